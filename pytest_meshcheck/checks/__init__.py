"""checks layer (see docs/architecture.md)."""
