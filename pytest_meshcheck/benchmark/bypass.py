"""The reference the mesh's cost is measured against: the same Bookinfo, outside the mesh.

A second copy of the application manifest goes into a namespace without sidecar injection (its
hops are plain HTTP between plain pods; the mesh-wide STRICT PeerAuthentication only binds
workloads that have a sidecar), and its productpage is exposed by a LoadBalancer Service, the way
the ingress gateway is, so both paths start with the same kind of network address and differ only
by the mesh. It is reached with the same discovery as the gateway (``kube.services``). Nothing is
shared with the meshed Bookinfo, so other suites running meanwhile are not disturbed; the caller
deletes the namespace afterwards.
"""

from __future__ import annotations

from typing import Any

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.install.bookinfo import bookinfo_manifest, install_app
from pytest_meshcheck.kube.apply import apply_documents
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.services import reach_service
from pytest_meshcheck.settings import Settings

NAMESPACE_PREFIX = "meshcheck-bench-bypass"
SERVICE_NAME = "productpage-bypass"
PRODUCTPAGE_PORT = 9080


def in_cluster_url(namespace: str) -> str:
    """The bypass productpage as pods reach it (for load generated in the cluster)."""
    return f"http://{SERVICE_NAME}.{namespace}.svc.cluster.local:{PRODUCTPAGE_PORT}"


def load_balancer_service() -> dict[str, Any]:
    """A LoadBalancer Service in front of the bypass copy's productpage pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "labels": {"app": "productpage", "meshcheck": "benchmark"}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "productpage"},
            "ports": [{"name": "http", "port": PRODUCTPAGE_PORT, "targetPort": PRODUCTPAGE_PORT}],
        },
    }


def install_bypass(kube: Kube, settings: Settings, namespace: str) -> str:
    """Install the copy in ``namespace`` (no injection), expose it, and return its base URL."""
    install_app(kube, settings, namespace=namespace, manifests=[bookinfo_manifest(settings)], injected=False)
    apply_documents(kube, [load_balancer_service()], namespace=namespace, timeout=settings.timeout)
    address = reach_service(kube, namespace, SERVICE_NAME, "http", lb_timeout=settings.timeout)
    if address.via == "apiserver":
        raise EnvironmentProblem(
            f"the bypass copy's productpage ({namespace}/{SERVICE_NAME}) is reachable from here only "
            "through the API server's proxy, which would add its own latency to the reference: the "
            "cluster gives LoadBalancer Services neither an address nor a reachable NodePort"
        )
    return address.url
