"""A lab cluster for the harness's own tests: the harness code under test talks to it only through
its kubeconfig, exactly as it would talk to EKS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_meshcheck.kube.client import Kube, connect


@pytest.fixture(scope="session")
def lab_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from pytest_meshcheck.lab.cluster import Lab

    lab = Lab(tmp_path_factory.mktemp("lab"), name="harness-tests")
    lab.start()
    try:
        yield lab.kubeconfig
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def kube(lab_kubeconfig: Path) -> Iterator[Kube]:
    client = connect(lab_kubeconfig, "")
    yield client
    client.close()
