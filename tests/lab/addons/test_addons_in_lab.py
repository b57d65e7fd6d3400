"""Prometheus and Kiali in a whole lab, installed from the harness's addon manifests with real
kubectl, reached through the API server's services/proxy and from the host."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from addonlab_support import ADDONS, KIALI_IMAGE, PROMETHEUS_IMAGE, poll

from pytest_meshcheck.lab.cluster import Lab

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None or shutil.which("prometheus") is None, reason="needs kubectl and prometheus"
)
VALUES = {
    "NAMESPACE": "istio-system",
    "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
    "KIALI_IMAGE": KIALI_IMAGE,
    "SCRAPE_INTERVAL": "1s",
}
GRAPH = "/kiali/api/namespaces/graph?namespaces=istio-system&graphType=versionedApp&duration=60s"


def kubectl(lab: Lab, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def manifest(name: str) -> str:
    return string.Template((ADDONS / name).read_text()).safe_substitute(VALUES)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("lab"), "addons-e2e", base_backoff=0.5, max_backoff=2.0)
    lab.start()
    try:
        kubectl(lab, "create", "namespace", "istio-system")
        kubectl(lab, "apply", "-f", "-", stdin=manifest("prometheus.yaml"))
        kubectl(lab, "apply", "-f", "-", stdin=manifest("kiali.yaml"))
        for name in ("prometheus", "kiali"):
            kubectl(lab, "-n", "istio-system", "rollout", "status", f"deployment/{name}", "--timeout=90s")
        yield lab
    finally:
        lab.stop()


def raw(lab: Lab, path: str) -> Any:
    return json.loads(kubectl(lab, "get", "--raw", path))


def test_kiali_and_prometheus_through_the_services_proxy(lab: Lab) -> None:
    proxy = "/api/v1/namespaces/istio-system/services"
    info = raw(lab, f"{proxy}/kiali:20001/proxy/kiali/api")
    assert info["status"]["Kiali state"] == "running"
    assert info["externalServices"][0]["version"], "Kiali reached Prometheus by its service name"
    graph = raw(lab, f"{proxy}/kiali:20001/proxy{GRAPH}")
    assert graph["elements"] == {"nodes": [], "edges": []}  # no mesh telemetry in this lab
    components = {
        c["name"]: c["status"] for c in raw(lab, f"{proxy}/kiali:20001/proxy/kiali/api/istio/status")
    }
    assert components == {"istiod": "NotFound", "istio-ingressgateway": "NotFound", "prometheus": "Healthy"}

    def self_scrape_up() -> bool:
        targets = raw(lab, f"{proxy}/prometheus:9090/proxy/api/v1/targets")["data"]["activeTargets"]
        return any(t["labels"]["job"] == "prometheus" and t["health"] == "up" for t in targets)

    poll(self_scrape_up, timeout=30, what="Prometheus scraping itself in the lab")
    logs = kubectl(lab, "-n", "istio-system", "logs", "deployment/prometheus")
    assert "Server is ready to receive web requests" in logs


def test_kiali_token_strategy_accepts_only_service_account_tokens(lab: Lab) -> None:
    configmap = json.loads(kubectl(lab, "-n", "istio-system", "get", "configmap", "kiali", "-o", "json"))
    configmap["data"]["config.yaml"] = configmap["data"]["config.yaml"].replace(
        "strategy: anonymous", "strategy: token"
    )
    kubectl(lab, "apply", "-f", "-", stdin=json.dumps(configmap))
    kubectl(lab, "-n", "istio-system", "rollout", "restart", "deployment/kiali")
    kubectl(lab, "-n", "istio-system", "rollout", "status", "deployment/kiali", "--timeout=90s")
    pods = json.loads(kubectl(lab, "-n", "istio-system", "get", "pods", "-l", "app=kiali", "-o", "json"))[
        "items"
    ]
    ip = next(
        p["status"]["podIP"]
        for p in pods
        if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]
    )
    base = f"http://{ip}:20001/kiali/api"

    def call(path: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(base + path, headers=headers or {}, data=data)
        try:
            with urllib.request.urlopen(request, timeout=20) as reply:
                return reply.status, (json.loads(reply.read() or b"null"), reply.headers.get("Set-Cookie"))
        except urllib.error.HTTPError as error:
            return error.code, None

    assert call("/auth/info")[1][0]["strategy"] == "token"
    assert call("/mesh/tls")[0] == 401
    assert call("/mesh/tls", {"Authorization": "Bearer not-a-token"})[0] == 401
    token = kubectl(lab, "-n", "istio-system", "create", "token", "kiali").strip()
    status, (body, _) = call("/mesh/tls", {"Authorization": f"Bearer {token}"})
    assert status == 200 and body["status"] == "MTLS_NOT_ENABLED"
    status, (login, cookie) = call("/authenticate", data=f"token={token}".encode())
    assert status == 200 and login["username"] == "system:serviceaccount:istio-system:kiali"
    session = cookie.split(";", 1)[0]
    assert call("/mesh/tls", {"Cookie": session})[0] == 200
    assert call("/authenticate", data=b"token=forged")[0] == 401
