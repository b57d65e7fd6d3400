"""The mesh inside the lab's own runtime: rendered install manifests, the webhook called by the
store's admission, Bookinfo injected (2/2), traffic through the ingress gateway over mTLS."""

from __future__ import annotations

import contextlib
import io
import json
import re
import string
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshlab_fakes import iter_metric_lines

from pytest_meshcheck.lab.mesh.manifests import render

cluster = pytest.importorskip("pytest_meshcheck.lab.cluster")
admission = pytest.importorskip("pytest_meshcheck.lab.apiserver.admission")
store_module = pytest.importorskip("pytest_meshcheck.lab.store")

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
VERSION = "1.24.2"
TIMEOUT = 60.0


def apply(store: Any, text: str, namespace: str | None = None, *, exists_ok: bool = False) -> None:
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        kind = store.kinds().for_kind(doc["apiVersion"], doc["kind"])
        assert kind is not None, f"{doc['apiVersion']} {doc['kind']} not served"
        gvr = store_module.GVR(kind.group, kind.version, kind.resource)
        ns = (doc["metadata"].get("namespace") or namespace) if kind.namespaced else None
        try:
            store.create(gvr, doc, namespace=ns)
        except Exception as exc:
            if not (exists_ok and getattr(exc, "code", 0) == 409):
                raise


def await_store(store: Any, check: Callable[[], Any], what: str) -> Any:
    """Re-check ``check`` on every store change until it returns something truthy."""
    watch = store.watch(None, resource_version=store.resource_version)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {what}"
            watch.next(timeout=min(remaining, 1.0))
    finally:
        watch.close()


def pods(store: Any, namespace: str) -> list[dict[str, Any]]:
    items, _ = store.list(store_module.GVR.core("pods"), namespace)
    return list(items)


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def test_istiod_runs_and_patches_its_webhook(mesh_lab: Any) -> None:
    control_plane_up(mesh_lab.store)


@pytest.fixture(scope="module")
def mesh_lab() -> Iterator[Any]:
    core = cluster.LabCore("mesh-in-lab")
    core.start()
    webhooks = admission.WebhookAdmission(core.store)
    webhooks.install()
    try:
        apply(core.store, render(VERSION))
        yield core
    finally:
        webhooks.uninstall()
        core.stop()


def control_plane_up(store: Any) -> None:
    await_store(
        store,
        lambda: [
            p
            for p in pods(store, "istio-system")
            if p["metadata"]["labels"].get("app") == "istiod" and ready(p)
        ],
        "istiod ready",
    )
    mwc = store_module.GVR.parse("admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")
    await_store(
        store,
        lambda: all(
            w["clientConfig"].get("caBundle")
            for w in store.get(mwc, None, "istio-sidecar-injector")["webhooks"]
        ),
        "caBundle",
    )


def test_bookinfo_injected_and_served_through_the_gateway(mesh_lab: Any) -> None:
    store = mesh_lab.store
    control_plane_up(store)
    namespaces = store_module.GVR.core("namespaces")
    store.create(
        namespaces,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "bookinfo", "labels": {"istio-injection": "enabled"}},
        },
    )
    apply(store, (FIXTURES / "bookinfo" / "bookinfo.yaml").read_text(), "bookinfo")
    apply(store, (FIXTURES / "bookinfo" / "bookinfo-gateway.yaml").read_text(), "bookinfo")

    def all_ready() -> list[dict[str, Any]]:
        found = pods(store, "bookinfo")
        return found if len(found) == 6 and all(ready(p) for p in found) else []

    running = await_store(store, all_ready, "6 Bookinfo pods ready")
    for pod in running:
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert names[-1] == "istio-proxy" and len(names) == 2, names
        assert pod["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    gateways = await_store(
        store,
        lambda: [
            p
            for p in pods(store, "istio-system")
            if p["metadata"]["labels"].get("istio") == "ingressgateway" and ready(p)
        ],
        "gateway ready",
    )
    gateway_ip = gateways[0]["status"]["podIP"]

    def productpage() -> str:
        try:
            with urllib.request.urlopen(f"http://{gateway_ip}:8080/productpage", timeout=10) as response:
                return str(response.read().decode()) if response.status == 200 else ""
        except (OSError, urllib.error.HTTPError):
            return ""

    page = await_store(store, productpage, "productpage through the gateway")
    assert "<title>Simple Bookstore App</title>" in page
    ratings = next(p for p in running if p["metadata"]["labels"]["app"] == "ratings")

    def ratings_edges() -> set[tuple[str, str]]:
        url = f"http://{ratings['status']['podIP']}:15020/stats/prometheus"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats = response.read().decode()
        return {
            (s["source_workload"], s["connection_security_policy"])
            for s in iter_metric_lines(stats, "istio_requests_total")
            if s["reporter"] == "destination"
        }

    # reviews-v1 never calls ratings; v2 and v3 do, over mutual TLS (which version answers is the
    # load balancer's choice, so ask until both have)
    edges: set[tuple[str, str]] = set()
    for _ in range(60):
        assert "Simple Bookstore App" in productpage()
        edges = ratings_edges()
        if {("reviews-v2", "mutual_tls"), ("reviews-v3", "mutual_tls")} <= edges:
            break
    assert edges == {("reviews-v2", "mutual_tls"), ("reviews-v3", "mutual_tls")}


def test_revisioned_istiod_side_by_side_with_native_sidecars(mesh_lab: Any) -> None:
    store = mesh_lab.store
    control_plane_up(store)
    apply(store, render("1.25.1", "canary", native_sidecars=True, gateway=False), exists_ok=True)
    canary = await_store(
        store,
        lambda: [
            p
            for p in pods(store, "istio-system")
            if p["metadata"]["labels"].get("istio.io/rev") == "canary" and ready(p)
        ],
        "istiod-canary ready",
    )
    namespaces = store_module.GVR.core("namespaces")
    store.create(
        namespaces,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "canary-apps", "labels": {"istio.io/rev": "canary"}},
        },
    )
    ratings = [
        d
        for d in yaml.safe_load_all((FIXTURES / "bookinfo" / "bookinfo.yaml").read_text())
        if d
        and (
            d["metadata"].get("labels", {}).get("app") == "ratings"
            or d["metadata"]["name"] == "bookinfo-ratings"
        )
    ]
    apply(store, yaml.safe_dump_all(ratings), "canary-apps")
    running = await_store(
        store, lambda: [p for p in pods(store, "canary-apps") if ready(p)], "ratings with a canary sidecar"
    )
    spec = running[0]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-init", "istio-proxy"]
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    assert spec["initContainers"][1]["image"] == "docker.io/istio/proxyv2:1.25.1"
    assert [c["name"] for c in spec["containers"]] == ["ratings"]
    assert running[0]["metadata"]["labels"]["istio.io/rev"] == "canary"
    url = f"http://{canary[0]['status']['podIP']}:15014/debug/syncz"

    def synced() -> list[dict[str, Any]]:
        with urllib.request.urlopen(url, timeout=10) as response:
            rows: list[dict[str, Any]] = json.loads(response.read())
        return [r for r in rows if r["proxy"].endswith(".canary-apps")]

    rows = await_store(store, synced, "the canary proxy in syncz")
    assert (rows[0]["proxy_version"], rows[0]["istiod_version"], rows[0]["revision"]) == (
        "1.25.1",
        "1.25.1",
        "canary",
    )


def exec_curl(core: Any, namespace: str, pod: str, url: str, *, body: bool = False) -> tuple[int, str]:
    """``kubectl exec <pod> -c curl -- curl ...`` through the lab's kubelet: (exit code, stdout)."""
    out, err = io.BytesIO(), io.BytesIO()
    argv = ["curl", "-sS", url] if body else ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url]
    code = core.kubelet.exec(namespace, pod, "curl", argv, stdin=None, stdout=out, stderr=err, tty=False)
    return code, out.getvalue().decode()


def test_mtls_migration_walk_through(mesh_lab: Any) -> None:
    store = mesh_lab.store
    control_plane_up(store)
    namespaces = store_module.GVR.core("namespaces")
    for ns, labels in (("foo", {"istio-injection": "enabled"}), ("legacy", {})):
        store.create(
            namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
        )
        for probe in ("httpbin.yaml", "curl.yaml"):
            apply(store, (FIXTURES / "probes" / probe).read_text(), ns)

    def curl_pods() -> dict[str, str]:
        found = {}
        for ns in ("foo", "legacy"):
            ready_pods = [p for p in pods(store, ns) if ready(p)]
            if len(ready_pods) != 2:
                return {}
            found[ns] = next(
                p["metadata"]["name"] for p in ready_pods if p["metadata"]["labels"].get("app") == "curl"
            )
        return found

    clients = await_store(store, curl_pods, "httpbin and curl in foo and legacy")
    url = "http://httpbin.foo:8000/ip"
    for ns, pod in clients.items():

        def answered(ns: str = ns, pod: str = pod) -> bool:
            return exec_curl(mesh_lab, ns, pod, url) == (0, "200")

        assert await_store(store, answered, f"200 from {ns}")
    code, headers = exec_curl(mesh_lab, "foo", clients["foo"], "http://httpbin.foo:8000/headers", body=True)
    assert code == 0
    assert re.search(
        r"By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=[0-9a-f]{64};Subject=\\\\?\"\\\\?\";"
        r"URI=spiffe://cluster.local/ns/foo/sa/curl",
        headers,
    ), headers
    httpbin = next(p for p in pods(store, "foo") if p["metadata"]["labels"].get("app") == "httpbin")
    with strict_mtls(mesh_lab, clients["legacy"], httpbin):
        assert exec_curl(mesh_lab, "foo", clients["foo"], url) == (0, "200")


@contextlib.contextmanager
def strict_mtls(core: Any, legacy_curl: str, httpbin: dict[str, Any]) -> Iterator[None]:
    """A mesh-wide STRICT PeerAuthentication, entered once the sidecars enforce it and left once they
    answer plaintext again: a test that left while the delete was still on its way to the sidecars
    would hand the next test a proxy that flips back to PERMISSIVE under it."""
    store = core.store
    # straight to the pod (the sidecar owns its IP): the reset reaches curl as on a real node
    pod_url = f"http://{httpbin['status']['podIP']}:8080/ip"

    def plaintext_answer() -> tuple[int, str]:
        return exec_curl(core, "legacy", legacy_curl, pod_url)

    await_store(store, lambda: plaintext_answer() == (0, "200"), "plaintext answered before STRICT")
    strict = string.Template((FIXTURES / "mesh" / "peer-authentication.yaml").read_text()).substitute(
        MTLS_MODE="STRICT"
    )
    apply(store, strict)
    try:
        # the sidecars apply the policy once istiod pushed it; until then PERMISSIVE still answers
        await_store(store, lambda: plaintext_answer() == (56, "000"), "STRICT enforced")
        yield
    finally:
        peer_authentications = store_module.GVR.parse("security.istio.io/v1/peerauthentications")
        store.delete(peer_authentications, "istio-system", "default")
        await_store(store, lambda: plaintext_answer() == (0, "200"), "plaintext answered after STRICT")


def test_strict_reset_reaches_clients_through_a_cluster_ip(mesh_lab: Any) -> None:
    store = mesh_lab.store
    legacy = next(
        (p for p in pods(store, "legacy") if p["metadata"]["labels"].get("app") == "curl" and ready(p)), None
    )
    if legacy is None:
        pytest.skip("needs the pods of test_mtls_migration_walk_through")
    httpbin = next(p for p in pods(store, "foo") if p["metadata"]["labels"].get("app") == "httpbin")
    name = legacy["metadata"]["name"]
    with strict_mtls(mesh_lab, name, httpbin):
        assert exec_curl(mesh_lab, "legacy", name, "http://httpbin.foo:8000/ip") == (56, "000")
