"""Public fixtures (``meshcheck_*``). Each is small and session-scoped so another repository can
override one (say, ``meshcheck_cluster`` to point at its own provisioning) without the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.session import SESSION_PLUGIN_NAME, MeshcheckSession
from pytest_meshcheck.settings import Settings

if TYPE_CHECKING:
    from pytest_meshcheck.checks.kiali import KialiClient
    from pytest_meshcheck.checks.probe import Probe
    from pytest_meshcheck.checks.prometheus import PrometheusClient
    from pytest_meshcheck.install.bookinfo import AppInstall
    from pytest_meshcheck.install.istio import MeshInstall
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


@pytest.fixture(scope="session")
def meshcheck_mesh(pytestconfig: pytest.Config) -> MeshInstall:
    """Istio as installed for this run (installed once, or reused): version, revision, method.

    Fixed when first used: after the upgrade gate, the cluster runs the target version."""
    from pytest_meshcheck.install.plan import mesh_from

    return mesh_from(_session(pytestconfig, "meshcheck_mesh").layer("mesh"))


@pytest.fixture(scope="session")
def meshcheck_bookinfo(pytestconfig: pytest.Config, meshcheck_mesh: MeshInstall) -> AppInstall:
    """Bookinfo, installed in ``--meshcheck-namespace`` with sidecar injection, rolled out."""
    from pytest_meshcheck.install.bookinfo import AppInstall

    result = _session(pytestconfig, "meshcheck_bookinfo").layer("bookinfo")
    return AppInstall(
        namespace=str(result["namespace"]),
        deployments=tuple(result["deployments"]),
        services=tuple(result["services"]),
        injected=True,
    )


@pytest.fixture(scope="session")
def meshcheck_gateway_url(
    pytestconfig: pytest.Config,
    meshcheck_settings: Settings,
    meshcheck_cluster: ClusterHandle,
    meshcheck_mesh: MeshInstall,
) -> str:
    """Base URL of the ingress gateway as seen from here: ``--meshcheck-gateway-url``, else the
    provider's, else the gateway Service's load balancer or NodePort (waiting, bounded, for LB DNS)."""
    if meshcheck_settings.gateway_url:
        return meshcheck_settings.gateway_url
    if meshcheck_cluster.gateway_url:
        return meshcheck_cluster.gateway_url
    from pytest_meshcheck.errors import EnvironmentProblem
    from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE
    from pytest_meshcheck.kube.services import reach_service

    session = _session(pytestconfig, "meshcheck_gateway_url")
    address = reach_service(
        session.kube(), ISTIO_NAMESPACE, GATEWAY_NAME, "http2", lb_timeout=meshcheck_settings.timeout
    )
    if address.via == "apiserver":
        raise EnvironmentProblem(
            f"the ingress gateway {ISTIO_NAMESPACE}/{GATEWAY_NAME} is not reachable from here through a load "
            "balancer or a NodePort; pass --meshcheck-gateway-url"
        )
    return address.url


@pytest.fixture(scope="session")
def meshcheck_prometheus(pytestconfig: pytest.Config) -> PrometheusClient:
    """A Prometheus HTTP API client (through the API server), after the addons are installed."""
    from pytest_meshcheck.checks.prometheus import PrometheusClient

    session = _session(pytestconfig, "meshcheck_prometheus")
    session.layer("addons")
    return PrometheusClient(session.kube())


@pytest.fixture(scope="session")
def meshcheck_kiali(pytestconfig: pytest.Config) -> KialiClient:
    """A Kiali REST API client (through the API server), after the addons are installed."""
    from pytest_meshcheck.checks.kiali import KialiClient

    session = _session(pytestconfig, "meshcheck_kiali")
    session.layer("addons")
    return KialiClient(session.kube())


@pytest.fixture(scope="session")
def meshcheck_probe(pytestconfig: pytest.Config) -> Probe:
    """Run curl from a pod inside the mesh (``where="in_mesh"``) or outside it (``"outside"``)."""
    from pytest_meshcheck.checks.probe import Probe

    session = _session(pytestconfig, "meshcheck_probe")
    result = session.layer("probes")
    return Probe(
        session.kube(),
        namespaces={"in_mesh": str(result["in_mesh"]), "outside": str(result["outside"])},
        timeout=session.settings.timeout,
    )


@pytest.fixture
def meshcheck_namespace(pytestconfig: pytest.Config) -> Iterator[Callable[..., str]]:
    """Factory: ``meshcheck_namespace("demo", injected=True)`` creates a uniquely named namespace
    (labelled for injection by the mesh's current revision if asked) and deletes it, waiting,
    afterwards."""
    import uuid

    from pytest_meshcheck.install.bookinfo import delete_namespace, ensure_namespace, injection_labels
    from pytest_meshcheck.install.plan import mesh_from

    session = _session(pytestconfig, "meshcheck_namespace")
    created: list[str] = []

    def create(
        prefix: str = "meshcheck", *, injected: bool = False, labels: dict[str, str] | None = None
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        wanted = dict(labels or {})
        if injected:  # labelled for the mesh as it is now (an upgrade may have moved it)
            wanted.update(injection_labels(mesh_from(session.layer("mesh")).injection_revision))
        ensure_namespace(session.kube(), name, wanted)
        created.append(name)
        return name

    yield create
    for name in created:
        delete_namespace(session.kube(), name, timeout=session.settings.timeout)
