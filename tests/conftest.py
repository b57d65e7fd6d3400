"""Shared test configuration for pytest-meshcheck's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_meshcheck_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean slate: a developer's MESHCHECK_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name == "MESHCHECK" or (name.startswith("MESHCHECK_") and name != "MESHCHECK_HOME"):
            monkeypatch.delenv(name)
