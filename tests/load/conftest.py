"""Fixtures of the load tests: a counting HTTP target on loopback and small load specs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.load.target import Target, serve


@pytest.fixture
def target() -> Iterator[Target]:
    with serve(Target()) as running:
        yield running


@pytest.fixture(scope="module")
def module_target() -> Iterator[Target]:
    with serve(Target()) as running:
        yield running


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "locust"
