"""The workloads and the exec shell inside the lab's own runtime, with the upstream manifest."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_meshcheck.lab.cluster import LabCore
from pytest_meshcheck.lab.store import GVR

MANIFEST = Path(__file__).resolve().parents[3] / "fixtures" / "bookinfo" / "bookinfo.yaml"
KINDS = {
    "Service": GVR.core("services"),
    "ServiceAccount": GVR.core("serviceaccounts"),
    "Deployment": GVR.parse("apps/v1/deployments"),
}
PODS = GVR.core("pods")
ENDPOINTS = GVR.core("endpoints")
SERVICES = ("details", "ratings", "reviews", "productpage")


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _endpoints_ready(core: LabCore) -> bool:
    """kube-proxy routes a ClusterIP only to the addresses its Endpoints list."""
    endpoints, _ = core.store.list(ENDPOINTS, "default")
    ready = {
        item["metadata"]["name"]
        for item in endpoints
        if any(subset.get("addresses") for subset in item.get("subsets") or [])
    }
    expected_reviews = 3
    reviews = next((item for item in endpoints if item["metadata"]["name"] == "reviews"), {})
    review_addresses = sum(len(subset.get("addresses") or []) for subset in reviews.get("subsets") or [])
    return set(SERVICES) <= ready and review_addresses == expected_reviews


@pytest.fixture(scope="module")
def bookinfo() -> Iterator[tuple[LabCore, dict[str, str]]]:
    core = LabCore("workloads-test")
    core.start()
    try:
        for document in yaml.safe_load_all(MANIFEST.read_text()):
            if document:
                core.store.create(KINDS[document["kind"]], document, namespace="default")
        deadline = time.monotonic() + 30
        pods: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            pods, _ = core.store.list(PODS, "default")
            if len(pods) == 6 and all(_ready(pod) for pod in pods) and _endpoints_ready(core):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"Bookinfo pods not ready: {[pod['metadata']['name'] for pod in pods]}")
        names = {
            pod["metadata"]["labels"]["app"] + "-" + pod["metadata"]["labels"]["version"]: pod["metadata"][
                "name"
            ]
            for pod in pods
        }
        _await_services(core, names["ratings-v1"])
        yield core, names
    finally:
        core.stop()


def _await_services(core: LabCore, from_pod: str) -> None:
    """Wait until every service answers through its ClusterIP (kube-proxy follows Endpoints)."""
    deadline = time.monotonic() + 30
    pending = set(SERVICES)
    while pending and time.monotonic() < deadline:
        for service in sorted(pending):
            argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{service}:9080/health"]
            if _exec(core, from_pod, "ratings", argv)[1] == "200":
                pending.discard(service)
        if pending:
            time.sleep(0.05)
    assert not pending, f"services not answering: {sorted(pending)}"


def _exec(core: LabCore, pod: str, container: str, argv: list[str]) -> tuple[int, str, str]:
    assert core.kubelet is not None
    out, err = io.BytesIO(), io.BytesIO()
    code = core.kubelet.exec("default", pod, container, argv, stdin=None, stdout=out, stderr=err, tty=False)
    return code, out.getvalue().decode(), err.getvalue().decode()


def test_curl_from_ratings_reaches_productpage(bookinfo: tuple[LabCore, dict[str, str]]) -> None:
    core, pods = bookinfo
    code, page, err = _exec(
        core, pods["ratings-v1"], "ratings", ["curl", "-sS", "productpage:9080/productpage"]
    )
    assert (code, err) == (0, "")
    assert "<title>Simple Bookstore App</title>" in page
    assert "Reviews served by:" in page
    assert "Error fetching" not in page


def test_shell_pipeline_and_localhost_in_a_pod(bookinfo: tuple[LabCore, dict[str, str]]) -> None:
    core, pods = bookinfo
    script = "curl -s productpage:9080/productpage | grep -o '<title>.*</title>'"
    assert _exec(core, pods["reviews-v2"], "reviews", ["sh", "-c", script]) == (
        0,
        "<title>Simple Bookstore App</title>\n",
        "",
    )
    code, out, _ = _exec(core, pods["ratings-v1"], "ratings", ["curl", "-s", "localhost:9080/ratings/0"])
    assert (code, out) == (0, '{"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}')
    fmt = "%{http_code}"
    url = "http://reviews.default.svc.cluster.local:9080/reviews/0"
    assert _exec(core, pods["details-v1"], "details", ["curl", "-s", "-o", "/dev/null", "-w", fmt, url]) == (
        0,
        "200",
        "",
    )
