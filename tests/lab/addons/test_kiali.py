"""Kiali's API against the real Prometheus scraping Bookinfo-shaped sidecar metrics: the graph's
edges and mTLS share, empty telemetry, the kiali-stale fault, status and auth endpoints."""

from __future__ import annotations

import functools
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from addonlab_support import (
    CONFIGMAPS,
    KIALI_IMAGE,
    PODS,
    PROMETHEUS_IMAGE,
    MetricsServer,
    StaticResolver,
    address,
    app_pod,
    ensure_namespace,
    pod_context,
    pod_from_template,
    poll,
    rendered,
)
from bookinfo_traffic import DETAILS, GATEWAY, PRODUCTPAGE, RATINGS, REVIEWS, Call, TrafficSet, bookinfo_calls

from pytest_meshcheck.lab.addons.kiali import KialiWorkload
from pytest_meshcheck.lab.addons.prometheus import PrometheusWorkload
from pytest_meshcheck.lab.store import Store

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus binary")
PROM_VALUES = {"NAMESPACE": "istio-system", "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE, "SCRAPE_INTERVAL": "1s"}
KIALI_VALUES = {"NAMESPACE": "istio-system", "KIALI_IMAGE": KIALI_IMAGE}
PEERS = [GATEWAY, PRODUCTPAGE, DETAILS, *REVIEWS.values(), RATINGS]


class Switchboard:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def active(self) -> set[str]:
        return set(self.names)


@dataclass
class Env:
    store: Store
    traffic: TrafficSet
    prometheus: PrometheusWorkload
    kiali: KialiWorkload
    faults: Switchboard

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://{self.kiali.address}/kiali{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=20) as reply:
                body = reply.read()
                return reply.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def graph(self, namespaces: str = "bookinfo", **params: str) -> dict[str, Any]:
        query = {"namespaces": namespaces, "graphType": "versionedApp", "duration": "60s"}
        query.update(params)
        status, body = self.get("/api/namespaces/graph?" + urllib.parse.urlencode(query))
        assert status == 200, body
        return dict(body)

    def prom_series(self, promql: str) -> list[Any]:
        url = f"http://{self.prometheus.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as reply:
            return list(json.load(reply)["data"]["result"])


def edges_by_workload(graph: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    nodes = {n["data"]["id"]: n["data"] for n in graph["elements"]["nodes"]}
    return {
        (nodes[e["data"]["source"]].get("workload", ""), nodes[e["data"]["target"]].get("workload", "")): e[
            "data"
        ]
        for e in graph["elements"]["edges"]
    }


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    store = Store()
    for namespace in ("istio-system", "bookinfo", "empty"):
        ensure_namespace(store, namespace)
    store.create(CONFIGMAPS, rendered("prometheus.yaml", "ConfigMap", **PROM_VALUES))
    store.create(CONFIGMAPS, rendered("kiali.yaml", "ConfigMap", **KIALI_VALUES))
    traffic = TrafficSet()
    servers = []
    started: list[Any] = []
    try:
        for peer in PEERS:
            ip = address()
            labels = {"app": peer.app, "version": peer.version}
            store.create(PODS, app_pod(f"{peer.workload}-5f7b8c-x1", peer.namespace, ip, labels))
            server = MetricsServer(ip, functools.partial(traffic.exposition_for, peer.workload))
            server.start()
            servers.append(server)
        prom_ip, kiali_ip = address(), address()
        prom_pod = pod_from_template(
            rendered("prometheus.yaml", "Deployment", **PROM_VALUES), "prometheus-1", prom_ip
        )
        store.create(PODS, prom_pod)
        services = {"store": store}
        prometheus = PrometheusWorkload(
            pod_context(prom_pod, container="prometheus-server", ip=prom_ip, services=services)
        )
        prometheus.start()
        started.append(prometheus)
        faults = Switchboard()
        resolver = StaticResolver()
        resolver.names["prometheus.istio-system"] = prom_ip
        kiali_pod = pod_from_template(
            rendered("kiali.yaml", "Deployment", **KIALI_VALUES), "kiali-1", kiali_ip
        )
        kiali_ctx = pod_context(
            kiali_pod,
            container="kiali",
            ip=kiali_ip,
            services={"store": store, "faults": faults},
            resolver=resolver,
        )
        kiali = KialiWorkload(kiali_ctx)
        kiali.start()
        started.append(kiali)
        yield Env(store, traffic, prometheus, kiali, faults)
    finally:
        for workload in reversed(started):
            workload.stop()
        for server in servers:
            server.stop()


def test_no_traffic_gives_an_empty_graph(env: Env) -> None:
    graph = env.graph("empty")
    assert graph["elements"] == {"nodes": [], "edges": []}
    assert graph["graphType"] == "versionedApp" and graph["duration"] == 60


def test_bookinfo_graph_has_exactly_the_edges_of_the_traffic(env: Env) -> None:
    calls = bookinfo_calls()
    calls[-1] = Call(REVIEWS["v3"], RATINGS, mtls_rate=1.0, plain_rate=1.0)  # half plaintext
    for call in calls:
        env.traffic.add(call)
    expected = {(c.source.workload, c.dest.workload) for c in calls}

    def complete() -> dict[str, Any] | None:
        graph = env.graph(injectServiceNodes="false", appenders="securityPolicy,responseTime")
        edges = edges_by_workload(graph)
        ready = set(edges) == expected and all("isMTLS" in e for e in edges.values())
        return graph if ready else None

    graph = poll(complete, timeout=40, what="the Bookinfo edges with their mTLS share", interval=0.5)
    edges = edges_by_workload(graph)
    assert ("reviews-v1", "ratings-v1") not in edges
    for pair, edge in edges.items():
        if pair == ("reviews-v3", "ratings-v1"):
            assert 40 <= int(edge["isMTLS"]) <= 60, edge
        else:
            assert edge["isMTLS"] == "100", (pair, edge)
        assert edge["traffic"]["protocol"] == "http"
        assert float(edge["traffic"]["rates"]["http"]) > 0
        assert edge["traffic"]["responses"]["200"]["flags"] == {"-": "100.0"}
    assert (
        edges[("reviews-v2", "ratings-v1")]["sourcePrincipal"]
        == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    )
    assert (
        edges[("reviews-v2", "ratings-v1")]["destPrincipal"]
        == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    )
    nodes = {n["data"].get("workload"): n["data"] for n in graph["elements"]["nodes"]}
    gateway = nodes["istio-ingressgateway"]
    assert gateway["namespace"] == "istio-system" and gateway["isRoot"] and gateway["isOutside"]
    assert nodes["productpage-v1"]["nodeType"] == "app" and "isRoot" not in nodes["productpage-v1"]
    assert nodes["reviews-v2"]["version"] == "v2" and nodes["reviews-v2"]["app"] == "reviews"
    # with service nodes: app -> service -> app
    injected = env.graph()
    services = {
        n["data"]["service"] for n in injected["elements"]["nodes"] if n["data"]["nodeType"] == "service"
    }
    assert services == {"productpage", "details", "reviews", "ratings"}


def test_kiali_stale_freezes_the_graph(env: Env) -> None:
    for call in bookinfo_calls():
        env.traffic.calls.setdefault((call.source.workload, call.dest.workload), (call, 0.0))
    before = env.graph(injectServiceNodes="false")
    env.faults.names.add("kiali-stale")
    try:
        env.traffic.add(Call(REVIEWS["v1"], RATINGS))
        poll(
            lambda: env.prom_series('istio_requests_total{source_workload="reviews-v1"}'),
            timeout=30,
            what="Prometheus to have the new reviews-v1 -> ratings series",
        )
        frozen = env.graph(injectServiceNodes="false")
        assert frozen["timestamp"] == before["timestamp"]
        assert ("reviews-v1", "ratings-v1") not in edges_by_workload(frozen)
    finally:
        env.faults.names.discard("kiali-stale")

    def thawed() -> dict[str, Any] | None:
        graph = env.graph(injectServiceNodes="false")
        return graph if ("reviews-v1", "ratings-v1") in edges_by_workload(graph) else None

    graph = poll(thawed, timeout=30, what="the new edge once the fault is cleared", interval=0.5)
    assert graph["timestamp"] > before["timestamp"]
    del env.traffic.calls[("reviews-v1", "ratings-v1")]


def test_status_tls_and_auth_endpoints(env: Env) -> None:
    assert env.get("/healthz")[0] == 200
    status, info = env.get("/api")
    assert status == 200 and info["status"]["Kiali state"] == "running"
    assert info["status"]["Kiali version"] == KIALI_IMAGE.rpartition(":")[2]
    assert info["externalServices"][0]["version"]  # Prometheus answered its build info
    assert env.get("/api/auth/info")[1]["strategy"] == "anonymous"
    assert env.get("/api/authenticate")[1]["username"] == "anonymous"
    assert env.get("/api/mesh/tls")[1]["status"] == "MTLS_NOT_ENABLED"
    components = {c["name"]: c for c in env.get("/api/istio/status")[1]}
    assert components["istiod"]["status"] == "NotFound" and components["istiod"]["is_core"]
    assert components["prometheus"]["status"] == "Healthy"
    assert env.get("/api/istio/validations?namespaces=bookinfo")[1] == {
        "bookinfo": {"errors": 0, "objectCount": 0, "warnings": 0}
    }
    assert env.get("/api/nothing-here")[0] == 404
    status, body = env.get("/api/namespaces/graph?namespaces=bookinfo&graphType=bogus")
    assert status == 400 and "graphType" in body["error"]
