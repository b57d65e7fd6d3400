"""One way for the suites to get a load run: local processes or in-cluster Jobs, from the settings.

``load_run`` returns an unstarted run with the same handle either way (``start``/``wait``/
``stop``/``result``, a context manager), so a suite reads the same whether the load comes from this
machine (``LoadRun``) or from next to the gateway (``InClusterLoadRun``,
``--meshcheck-load-in-cluster``). In the cluster the target is the ingress gateway's Service by
its cluster DNS name, not the URL this machine reaches it at.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.install.images import rewrite_image
from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE
from pytest_meshcheck.kube.client import Kube, translated
from pytest_meshcheck.load.incluster import InClusterLoadRun
from pytest_meshcheck.load.manifests import locust_image
from pytest_meshcheck.load.runner import LoadRun
from pytest_meshcheck.load.spec import spec_from_settings
from pytest_meshcheck.settings import Settings

#: The gateway Service port that serves plain HTTP (Istio's charts name it ``http2``).
GATEWAY_HTTP_PORT_NAME = "http2"


#: Either kind of run; both offer start/wait/stop/result/running and the context manager.
LoadHandle = LoadRun | InClusterLoadRun


def locust_version() -> str:
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError as exc:
        raise LoadError("Locust is not installed; the in-cluster image is pinned to its version") from exc


def gateway_service_url(kube: Kube, *, namespace: str = ISTIO_NAMESPACE, name: str = GATEWAY_NAME) -> str:
    """The ingress gateway as pods reach it: ``http://<svc>.<ns>.svc.cluster.local:<http port>``."""
    with translated(f"reading Service {namespace}/{name}"):
        service = kube.core.read_namespaced_service(name, namespace)
    ports = service.spec.ports or []
    port = next((p.port for p in ports if p.name == GATEWAY_HTTP_PORT_NAME), None)
    port = port or next((p.port for p in ports if p.port == 80), None) or 80
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


def load_run(
    settings: Settings,
    gateway_url: str,
    *,
    kube: Kube | None = None,
    run_name: str = "load",
    duration_s: float | None = None,
    host_header: str = "",
    env: Mapping[str, str] | None = None,
) -> LoadHandle:
    """The run the options ask for against the gateway (``gateway_url`` is used for local runs)."""
    spec = spec_from_settings(
        settings, gateway_url, run_name=run_name, duration_s=duration_s, host_header=host_header, env=env
    )
    if not settings.load_in_cluster:
        return LoadRun(spec)
    if kube is None:
        raise LoadError("--meshcheck-load-in-cluster needs a Kubernetes client (the meshcheck_kube fixture)")
    image = rewrite_image(locust_image(locust_version()), settings.image_registry)
    return InClusterLoadRun(spec, kube=kube, image=image, target_url=gateway_service_url(kube))
