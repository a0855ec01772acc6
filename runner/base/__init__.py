"""What every layer shares: user-facing errors, YAML with positions, did-you-mean, atomic writes."""
