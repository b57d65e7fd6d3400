"""install layer (see docs/architecture.md)."""
