"""kratix-step-runner: declarative, YAML-driven steps for Kratix Promise workflows."""

__version__ = "0.1.0"
