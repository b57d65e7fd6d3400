"""Shared test configuration for pytest-meshcheck's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_meshcheck_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean slate: a developer's MESHCHECK_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name == "MESHCHECK" or (name.startswith("MESHCHECK_") and name != "MESHCHECK_HOME"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _locust_stays_out_of_the_test_process() -> Iterator[None]:
    """Importing locust monkey-patches this whole process with gevent: every later test that
    waits on a child process would then block all its threads. Name the test that did it."""
    import sys

    yield
    assert "locust" not in sys.modules, "this test imported locust into the pytest process"
