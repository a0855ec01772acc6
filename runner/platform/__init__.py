"""The platform the runner runs on: Kratix's files and environment, running one command,
the kernel's limits, the masker, the log, signals and settings."""
