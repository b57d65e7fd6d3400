"""The whole chain in a lab: Istio from the lab's manifests, Bookinfo injected, traffic through
the ingress gateway, the sidecars' metrics scraped by the real Prometheus, and Kiali's graph read
with kubectl through the API server's services/proxy."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from addonlab_support import ADDONS, KIALI_IMAGE, PROMETHEUS_IMAGE, ROOT, poll

from pytest_meshcheck.lab.cluster import Lab

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None or shutil.which("prometheus") is None, reason="needs kubectl and prometheus"
)
ISTIO = ROOT / "fixtures" / "istio"
BOOKINFO = ROOT / "fixtures" / "bookinfo"
VALUES = {
    "NAMESPACE": "istio-system",
    "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
    "KIALI_IMAGE": KIALI_IMAGE,
    "SCRAPE_INTERVAL": "1s",
    "VERSION": "1.24.2",
    "HUB": "docker.io/istio",
    "REVISION": "default",
    "REVISION_SUFFIX": "",
    "NATIVE_SIDECARS": "false",
}
GRAPH = (
    "/api/v1/namespaces/istio-system/services/kiali:20001/proxy/kiali/api/namespaces/graph"
    "?namespaces=bookinfo&graphType=versionedApp&duration=60s&injectServiceNodes=false"
    "&appenders=securityPolicy,responseTime"
)


def kubectl(lab: Lab, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def render(path: Path) -> str:
    return string.Template(path.read_text()).safe_substitute(VALUES)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("lab"), "mesh-graph", base_backoff=0.5, max_backoff=2.0)
    lab.start()
    try:
        for name in ("namespace.yaml", "crds.yaml", "istiod.yaml"):
            kubectl(lab, "apply", "-f", "-", stdin=render(ISTIO / name))
        kubectl(lab, "-n", "istio-system", "rollout", "status", "deployment/istiod", "--timeout=120s")
        kubectl(lab, "apply", "-f", "-", stdin=render(ISTIO / "injector-webhook.yaml"))
        kubectl(lab, "apply", "-f", "-", stdin=render(ISTIO / "ingressgateway.yaml"))
        kubectl(lab, "apply", "-f", "-", stdin=render(ADDONS / "prometheus.yaml"))
        kubectl(lab, "apply", "-f", "-", stdin=render(ADDONS / "kiali.yaml"))
        kubectl(lab, "create", "namespace", "bookinfo")
        kubectl(lab, "label", "namespace", "bookinfo", "istio-injection=enabled")
        kubectl(lab, "-n", "bookinfo", "apply", "-f", "-", stdin=(BOOKINFO / "bookinfo.yaml").read_text())
        kubectl(
            lab, "-n", "bookinfo", "apply", "-f", "-", stdin=(BOOKINFO / "bookinfo-gateway.yaml").read_text()
        )
        for namespace, name in (
            ("istio-system", "istio-ingressgateway"),
            ("istio-system", "prometheus"),
            ("istio-system", "kiali"),
            *(
                ("bookinfo", d)
                for d in (
                    "productpage-v1",
                    "details-v1",
                    "ratings-v1",
                    "reviews-v1",
                    "reviews-v2",
                    "reviews-v3",
                )
            ),
        ):
            kubectl(lab, "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=120s")
        yield lab
    finally:
        lab.stop()


def gateway_url(lab: Lab) -> str:
    service = json.loads(
        kubectl(lab, "-n", "istio-system", "get", "service", "istio-ingressgateway", "-o", "json")
    )
    ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
    host = ingress.get("ip") or ingress.get("hostname")
    assert host, service.get("status")
    return f"http://{host}:80/productpage"


def edges(graph: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    nodes = {n["data"]["id"]: n["data"] for n in graph["elements"]["nodes"]}
    return {
        (nodes[e["data"]["source"]].get("workload", ""), nodes[e["data"]["target"]].get("workload", "")): e[
            "data"
        ]
        for e in graph["elements"]["edges"]
    }


def test_kiali_graph_of_bookinfo_traffic(lab: Lab) -> None:
    url = gateway_url(lab)
    expected = {
        ("istio-ingressgateway", "productpage-v1"),
        ("productpage-v1", "details-v1"),
        ("productpage-v1", "reviews-v1"),
        ("productpage-v1", "reviews-v2"),
        ("productpage-v1", "reviews-v3"),
        ("reviews-v2", "ratings-v1"),
        ("reviews-v3", "ratings-v1"),
    }

    def graph_complete() -> dict[str, Any] | None:
        for _ in range(6):  # keep traffic flowing while waiting for scrapes
            with urllib.request.urlopen(url, timeout=20) as reply:
                assert reply.status == 200
        graph = json.loads(kubectl(lab, "get", "--raw", GRAPH))
        found = edges(graph)
        return graph if expected <= set(found) and all("isMTLS" in e for e in found.values()) else None

    graph = poll(graph_complete, timeout=150, what="Kiali's Bookinfo graph", interval=0.5)
    found = edges(graph)
    assert set(found) == expected
    assert all(edge["isMTLS"] == "100" for edge in found.values()), found
    assert ("reviews-v1", "ratings-v1") not in found
