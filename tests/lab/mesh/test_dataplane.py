from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request

import pytest
from meshlab_env import MeshLab, PodHandle, http_exchange, mesh_get, plain_get
from meshlab_fakes import iter_metric_lines
from meshlab_objects import istio, peer_auth

from pytest_meshcheck.lab.httpframing import ProtocolError
from pytest_meshcheck.lab.mesh.telemetry import IstioMetrics

SLEEP = "spiffe://cluster.local/ns/apps/sa/sleep"
HTTPBIN = "spiffe://cluster.local/ns/apps/sa/httpbin"


@pytest.fixture
def pair(lab: MeshLab) -> tuple[PodHandle, PodHandle, str]:
    """An injected client (sleep) and an injected server (httpbin) behind a Service."""
    service_ip = lab.service("httpbin", "apps", {"app": "httpbin"})
    server = lab.add_pod("httpbin-a", {"app": "httpbin", "version": "v1"})
    client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    return client, server, service_ip


def scrape(ip: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/stats/prometheus", timeout=10) as response:
        return str(response.read().decode())


def test_mtls_between_sidecars_carries_client_identity(pair: tuple[PodHandle, PodHandle, str]) -> None:
    client, _server, service_ip = pair
    response = mesh_get(client, service_ip, 8000)
    assert response.status == 200
    seen = json.loads(response.body)["headers"]
    xfcc = seen["x-forwarded-client-cert"]
    assert re.fullmatch(rf'By={HTTPBIN};Hash=[0-9a-f]{{64}};Subject="";URI={SLEEP}', xfcc), xfcc
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-request-id"]
    assert "x-envoy-peer-metadata" not in seen
    # keep-alive between the app and its sidecar: two requests on one captured connection
    sock = socket.create_connection((client.ip, 15001), timeout=10)
    try:
        first = http_exchange(
            sock,
            "/one",
            "httpbin:8000",
            prelude=f"PROXY TCP4 {client.local} {service_ip} 1 8000\r\n".encode(),
        )
        second = http_exchange(sock, "/two", "httpbin:8000")
        assert (first.status, second.status) == (200, 200)
        assert json.loads(second.body)["path"] == "/two"
    finally:
        sock.close()


def test_strict_resets_plaintext_and_permissive_accepts(
    lab: MeshLab, pair: tuple[PodHandle, PodHandle, str]
) -> None:
    client, server, service_ip = pair
    outside = plain_get(server.ip, 8000)
    assert outside.status == 200
    assert "x-forwarded-client-cert" not in json.loads(outside.body)["headers"]
    strict = peer_auth("default", "istio-system", "STRICT")
    lab.apply(strict)
    with pytest.raises(ConnectionResetError):
        plain_get(server.ip, 8000)
    assert mesh_get(client, service_ip, 8000).status == 200
    lab.faults.names.add("mtls-not-enforced")
    assert plain_get(server.ip, 8000).status == 200
    lab.faults.names.clear()
    with pytest.raises(ConnectionResetError):
        plain_get(server.ip, 8000)
    # a workload-level PERMISSIVE port override re-opens only that workload
    lab.apply(
        peer_auth("httpbin", "apps", None, selector={"app": "httpbin"}, port_level={"8000": "PERMISSIVE"})
    )
    assert plain_get(server.ip, 8000).status == 200


def test_metrics_from_both_reporters(pair: tuple[PodHandle, PodHandle, str]) -> None:
    client, server, service_ip = pair
    assert mesh_get(client, service_ip, 8000).status == 200
    dest = [s for s in iter_metric_lines(scrape(server.ip, 15020), "istio_requests_total")]
    assert len(dest) == 1
    expected = {
        "reporter": "destination",
        "source_workload": "sleep",
        "source_workload_namespace": "apps",
        "source_principal": SLEEP,
        "source_app": "sleep",
        "source_version": "unknown",
        "source_canonical_service": "sleep",
        "source_canonical_revision": "latest",
        "source_cluster": "Kubernetes",
        "destination_workload": "httpbin",
        "destination_workload_namespace": "apps",
        "destination_principal": HTTPBIN,
        "destination_app": "httpbin",
        "destination_version": "v1",
        "destination_canonical_service": "httpbin",
        "destination_canonical_revision": "v1",
        "destination_service": "httpbin.apps.svc.cluster.local",
        "destination_service_name": "httpbin",
        "destination_service_namespace": "apps",
        "request_protocol": "http",
        "response_code": "200",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
        "__value__": "1",
    }
    assert {k: dest[0].get(k) for k in expected} == expected
    source = list(iter_metric_lines(scrape(client.ip, 15090), "istio_requests_total"))
    assert len(source) == 1
    assert source[0]["reporter"] == "source"
    assert {
        k: source[0][k]
        for k in (
            "source_workload",
            "destination_workload",
            "destination_principal",
            "destination_service",
            "connection_security_policy",
        )
    } == {
        "source_workload": "sleep",
        "destination_workload": "httpbin",
        "destination_principal": HTTPBIN,
        "destination_service": "httpbin.apps.svc.cluster.local",
        "connection_security_policy": "mutual_tls",
    }
    buckets = list(iter_metric_lines(scrape(server.ip, 15020), "istio_request_duration_milliseconds_bucket"))
    assert [b["le"] for b in buckets][:3] == ["0.5", "1", "5"]
    assert buckets[-1]["le"] == "+Inf" and buckets[-1]["__value__"] == "1"
    # plaintext from outside the mesh: unknown source, no mTLS
    plain_get(server.ip, 8000)
    plain = [
        s
        for s in iter_metric_lines(scrape(server.ip, 15020), "istio_requests_total")
        if s["connection_security_policy"] == "none"
    ]
    assert [(s["source_workload"], s["source_principal"]) for s in plain] == [("unknown", "unknown")]


def test_routing_faults_and_destination_rule_tls(
    lab: MeshLab, pair: tuple[PodHandle, PodHandle, str]
) -> None:
    client, server, service_ip = pair
    lab.apply(
        istio(
            "VirtualService",
            "httpbin",
            "apps",
            {
                "hosts": ["httpbin"],
                "http": [
                    {
                        "match": [{"uri": {"prefix": "/teapot"}}],
                        "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
                        "route": [{"destination": {"host": "httpbin"}}],
                    },
                    {
                        "match": [{"headers": {"x-missing": {"exact": "yes"}}}],
                        "route": [{"destination": {"host": "httpbin", "subset": "nope"}}],
                    },
                    {"route": [{"destination": {"host": "httpbin", "port": {"number": 8000}}}]},
                ],
            },
        )
    )
    assert mesh_get(client, service_ip, 8000, "/teapot").status == 418
    assert mesh_get(client, service_ip, 8000, "/x", headers={"x-missing": "yes"}).status == 503
    assert mesh_get(client, service_ip, 8000, "/x").status == 200
    flags = {s["response_flags"] for s in iter_metric_lines(scrape(client.ip, 15020), "istio_requests_total")}
    assert {"FI", "UH", "-"} <= flags
    lab.apply(
        istio(
            "DestinationRule",
            "httpbin",
            "apps",
            {"host": "httpbin", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
        )
    )
    response = mesh_get(client, service_ip, 8000, "/plain")
    assert response.status == 200
    assert "x-forwarded-client-cert" not in json.loads(response.body)["headers"]
    policies = {
        (s["reporter"], s["connection_security_policy"])
        for s in iter_metric_lines(scrape(server.ip, 15020), "istio_requests_total")
    }
    assert ("destination", "none") in policies


def test_dataplane_faults(lab: MeshLab) -> None:
    ratings_ip = lab.service("ratings", "apps", {"app": "ratings"}, ports=(("http", 9080, 9080),))
    reviews_ip = lab.service("reviews", "apps", {"app": "reviews"}, ports=(("http", 9080, 9080),))
    ratings = lab.add_pod(
        "ratings-v1-a", {"app": "ratings", "version": "v1"}, ports=(9080,), service_account="bookinfo-ratings"
    )
    reviews2 = lab.add_pod(
        "reviews-v2-a", {"app": "reviews", "version": "v2"}, ports=(9080,), service_account="bookinfo-reviews"
    )
    reviews3 = lab.add_pod(
        "reviews-v3-a", {"app": "reviews", "version": "v3"}, ports=(9080,), service_account="bookinfo-reviews"
    )
    assert mesh_get(reviews3, ratings_ip, 9080, "/ratings/0").status == 200
    healthy = list(iter_metric_lines(scrape(reviews3.ip, 15020), "istio_requests_total"))
    assert [(s["destination_workload"], s["connection_security_policy"]) for s in healthy] == [
        ("ratings-v1", "mutual_tls")
    ]
    reviews3.proxy.metrics = IstioMetrics()
    ratings.proxy.metrics = IstioMetrics()
    lab.faults.names.update({"plaintext-hop", "missing-edge"})
    hop = mesh_get(reviews2, ratings_ip, 9080, "/ratings/0")
    assert hop.status == 200
    assert "x-forwarded-client-cert" not in json.loads(hop.body)["headers"]
    assert mesh_get(reviews3, ratings_ip, 9080, "/ratings/0").status == 200
    at_ratings = list(iter_metric_lines(scrape(ratings.ip, 15020), "istio_requests_total"))
    assert [(s["source_workload"], s["connection_security_policy"]) for s in at_ratings] == [
        ("reviews-v2", "none")
    ]
    assert not list(iter_metric_lines(scrape(reviews3.ip, 15020), "istio_requests_total"))
    lab.faults.names.clear()
    lab.faults.names.add("ratings-5xx")
    failed = mesh_get(reviews2, ratings_ip, 9080, "/ratings/0")
    assert failed.status == 503
    codes = {
        (s["response_code"], s["response_flags"])
        for s in iter_metric_lines(scrape(ratings.ip, 15020), "istio_requests_total")
    }
    assert ("503", "FI") in codes
    lab.faults.names.clear()
    lab.faults.names.add("slow-reviews")
    slow = mesh_get(ratings, reviews_ip, 9080, "/reviews/0")
    assert slow.status == 200
    sums = [
        float(s["__value__"])
        for s in iter_metric_lines(scrape(ratings.ip, 15020), "istio_request_duration_milliseconds_sum")
        if s["reporter"] == "source" and s["destination_app"] == "reviews"
    ]
    # a lower bound only: the fault adds 400 ms, however fast or slow the machine is
    assert len(sums) == 1 and sums[0] >= 400


def test_gateway_routes_bookinfo_sample(lab: MeshLab) -> None:
    from pathlib import Path

    import yaml

    gw_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    lab.service(
        "istio-ingressgateway",
        "istio-system",
        gw_labels,
        ports=(("status-port", 15021, 15021), ("http2", 80, 8080), ("https", 443, 8443)),
    )
    lab.service("productpage", "apps", {"app": "productpage"}, ports=(("http", 9080, 9080),))
    productpage = lab.add_pod("productpage-v1-a", {"app": "productpage", "version": "v1"}, ports=(9080,))
    gateway = lab.add_pod(
        "istio-ingressgateway-a",
        gw_labels,
        namespace="istio-system",
        ports=(8080, 8443),
        service_account="istio-ingressgateway-service-account",
        sidecar=False,
        router=True,
    )
    sample = (Path(__file__).parent / "data" / "bookinfo-gateway.yaml").read_text()
    for doc in yaml.safe_load_all(sample):
        doc["metadata"]["namespace"] = "apps"
        lab.apply(doc)
    assert gateway.proxy.listening_ports() == [8080]
    response = plain_get(gateway.ip, 8080, "/productpage", host="bookinfo.example")
    assert response.status == 200
    seen = json.loads(response.body)
    assert seen["path"] == "/productpage"
    assert seen["headers"]["x-forwarded-client-cert"].endswith(
        "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    )
    assert plain_get(gateway.ip, 8080, "/admin").status == 404
    lab.faults.names.add("gateway-404")
    assert plain_get(gateway.ip, 8080, "/productpage").status == 404
    lab.faults.names.clear()
    sample_lines = list(iter_metric_lines(scrape(gateway.ip, 15020), "istio_requests_total"))
    assert {
        (s["reporter"], s["source_workload"], s["destination_workload"], s["response_code"])
        for s in sample_lines
    } >= {
        ("source", "istio-ingressgateway", "productpage-v1", "200"),
        ("source", "istio-ingressgateway", "unknown", "404"),
    }
    del productpage


def test_healthy_shutdown_drains_and_upgrade_drops_resets(lab: MeshLab) -> None:
    """Healthy: Envoy's graceful drain. The listener stays open while draining (a connection that
    was on its way is still served, told ``Connection: close``), in-flight requests finish, then the
    listener closes. Under ``upgrade-drops`` the listener closes at once and connections are reset."""
    for fault in ("", "upgrade-drops"):
        lab.faults.names.clear()
        if fault:
            lab.faults.names.add(fault)
        server = lab.add_pod(f"slow{len(fault)}-a", {"app": f"slow{len(fault)}"})
        server.app.release.clear()
        outcomes: list[dict[str, object]] = [{}, {}]

        def call(outcome: dict[str, object], server: PodHandle = server) -> None:
            try:
                response = plain_get(server.ip, 8000, "/slow")
                outcome["status"] = response.status
                outcome["connection"] = response.header("connection")
            except OSError as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=call, args=(outcomes[0],))
        caller.start()
        assert server.app.entered.acquire(timeout=10)
        stopper = threading.Thread(target=server.proxy.stop)
        stopper.start()
        late = threading.Thread(target=call, args=(outcomes[1],))
        if fault:
            assert server.proxy.listeners_closed.wait(10)
            with pytest.raises(ConnectionRefusedError):
                plain_get(server.ip, 8000)
        else:
            deadline = time.monotonic() + 10
            while not server.proxy.draining and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.proxy.draining
            late.start()
            # accepted and handed to the app although the proxy is draining
            assert server.app.entered.acquire(timeout=10)
            assert not server.proxy.listeners_closed.is_set()
        server.app.release.set()
        stopper.join(timeout=15)
        caller.join(timeout=10)
        if fault:
            assert isinstance(outcomes[0].get("error"), ConnectionResetError), outcomes
        else:
            late.join(timeout=10)
            assert outcomes[0]["status"] == 200 and outcomes[1]["status"] == 200, outcomes
            assert outcomes[1]["connection"] == "close", outcomes
            assert server.proxy.listeners_closed.is_set()
            with pytest.raises(ConnectionRefusedError):
                plain_get(server.ip, 8000)
        lab.pods.remove(server)
        server.app.close()


def test_a_stopped_proxy_closes_the_connections_a_scraper_kept_alive(lab: MeshLab) -> None:
    """A pod that is gone must not go on answering on a kept-alive connection: Prometheus keeps
    its scrape connections open, and the next pod given the same IP would otherwise have the dead
    pod's metrics scraped under its own name."""
    server = lab.add_pod("scraped-a", {"app": "scraped"})
    kept: dict[int, socket.socket] = {}
    try:
        for port in (15020, 15090, 15021):
            kept[port] = socket.create_connection((server.ip, port), timeout=10)
            path = "/healthz/ready" if port == 15021 else "/stats/prometheus"
            assert http_exchange(kept[port], path, f"{server.ip}:{port}").status == 200
        server.proxy.stop()
        for port, sock in kept.items():
            path = "/healthz/ready" if port == 15021 else "/stats/prometheus"
            with pytest.raises((OSError, ProtocolError)):
                http_exchange(sock, path, f"{server.ip}:{port}")
    finally:
        for sock in kept.values():
            sock.close()
