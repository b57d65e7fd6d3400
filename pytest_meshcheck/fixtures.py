"""Public fixtures (``meshcheck_*``). Each is small and session-scoped so another repository can
override one (say, ``meshcheck_cluster`` to point at its own provisioning) without the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.session import SESSION_PLUGIN_NAME, MeshcheckSession
from pytest_meshcheck.settings import Settings

if TYPE_CHECKING:
    from pytest_meshcheck.kube.client import Kube


def _session(config: pytest.Config, fixture: str) -> MeshcheckSession:
    session = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    if session is None:
        pytest.skip(f"{fixture} needs the mesh gate: run pytest with --meshcheck (or MESHCHECK=1)")
    assert isinstance(session, MeshcheckSession)
    return session


@pytest.fixture(scope="session")
def meshcheck_settings(pytestconfig: pytest.Config) -> Settings:
    """The run's validated settings, with where each value came from."""
    return _session(pytestconfig, "meshcheck_settings").settings


@pytest.fixture(scope="session")
def meshcheck_cluster(pytestconfig: pytest.Config) -> ClusterHandle:
    """The provisioned cluster's handle (kubeconfig, context, how to reach services).

    Provisioned once per run, on the xdist controller when running distributed.
    """
    return _session(pytestconfig, "meshcheck_cluster").cluster()


@pytest.fixture(scope="session")
def meshcheck_kube(meshcheck_cluster: ClusterHandle) -> Iterator[Kube]:
    """A configured Kubernetes client for the cluster (``.core``, ``.apps``, ``.custom``,
    ``.dynamic``, ``.api_client``), checked to answer before any test uses it."""
    from pytest_meshcheck.kube.client import connect

    kube = connect(meshcheck_cluster.kubeconfig, meshcheck_cluster.context)
    kube.server_version()
    yield kube
    kube.close()
