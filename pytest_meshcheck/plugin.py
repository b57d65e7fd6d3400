"""pytest hook wiring for pytest-meshcheck (filled in by the foundation work)."""

from __future__ import annotations
