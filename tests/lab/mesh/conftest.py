"""The mesh tests' shared fixture: a fresh in-process mesh (istiod, proxies, apps) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from meshlab_env import MeshLab


@pytest.fixture
def lab() -> Iterator[MeshLab]:
    mesh = MeshLab()
    try:
        yield mesh
    finally:
        mesh.close()
