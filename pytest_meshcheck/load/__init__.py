"""load layer (see docs/architecture.md)."""
