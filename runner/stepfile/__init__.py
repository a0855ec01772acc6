"""Step files: loading with positions, the JSON Schema, semantic checks and the typed model."""
