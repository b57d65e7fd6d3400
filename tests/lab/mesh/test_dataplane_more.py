from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import urllib.error
import urllib.request

import pytest
from meshlab_env import WAIT, MeshLab, http_exchange, mesh_get, plain_get
from meshlab_fakes import EchoApp, TcpEchoApp, iter_metric_lines
from meshlab_objects import istio, peer_auth, service

from pytest_meshcheck.lab.mesh.ca import MeshCA

SLEEP = "spiffe://cluster.local/ns/apps/sa/sleep"


def scrape(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:15020/stats/prometheus", timeout=10) as response:
        return str(response.read().decode())


def test_tcp_relay_with_mtls_and_tcp_metrics(lab: MeshLab) -> None:
    service_ip = lab.service("echo", "apps", {"app": "echo"}, ports=(("tcp-echo", 9000, 9000),))
    server = lab.add_pod("echo-a", {"app": "echo", "version": "v1"}, ports=(9000,), http_apps=False)
    echo = TcpEchoApp((server.local, 9000))
    try:
        lab.apply(peer_auth("default", "istio-system", "STRICT"))
        client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
        sock = socket.create_connection((client.ip, 15001), timeout=WAIT)
        sock.sendall(f"PROXY TCP4 {client.local} {service_ip} 40000 9000\r\n".encode() + b"hello ")
        sock.sendall(b"mesh")
        received = b""
        while len(received) < 10:
            chunk = sock.recv(100)
            assert chunk
            received += chunk
        assert received == b"HELLO MESH"
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
        sock.close()
        raw = socket.create_connection((server.ip, 9000), timeout=WAIT)
        raw.sendall(b"x")
        with pytest.raises(ConnectionResetError):  # STRICT: plaintext TCP from outside is reset
            raw.recv(10)
        raw.close()
        client_stats = scrape(client.ip)
        opened = list(iter_metric_lines(client_stats, "istio_tcp_connections_opened_total"))
        assert [
            (s["reporter"], s["destination_workload"], s["connection_security_policy"]) for s in opened
        ] == [("source", "echo", "mutual_tls")]
        sent = list(iter_metric_lines(client_stats, "istio_tcp_received_bytes_total"))
        assert sent[0]["__value__"] == "10"
        opened_at_server = list(iter_metric_lines(scrape(server.ip), "istio_tcp_connections_opened_total"))
        assert [(s["reporter"], s["source_workload"], s["source_principal"]) for s in opened_at_server] == [
            ("destination", "sleep", SLEEP)
        ]
    finally:
        echo.close()


def test_timeout_and_retries(lab: MeshLab) -> None:
    service_ip = lab.service("httpbin", "apps", {"app": "httpbin"})
    server = lab.add_pod("httpbin-a", {"app": "httpbin"}, status=503)
    client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    # default retry policy: 503 is retried twice, then answered with URX
    response = mesh_get(client, service_ip, 8000, "/flaky")
    assert response.status == 503
    assert len(server.app.requests) == 3
    flags = {
        s["response_flags"]
        for s in iter_metric_lines(scrape(client.ip), "istio_requests_total")
        if s["reporter"] == "source"
    }
    assert flags == {"URX"}
    lab.apply(
        istio(
            "VirtualService",
            "httpbin",
            "apps",
            {
                "hosts": ["httpbin"],
                "http": [
                    {
                        "route": [{"destination": {"host": "httpbin"}}],
                        "timeout": "0.3s",
                        "retries": {"attempts": 0},
                    }
                ],
            },
        )
    )
    server.app.status = 200
    server.app.release.clear()
    try:
        timed_out = mesh_get(client, service_ip, 8000, "/slow")
    finally:
        server.app.release.set()
    assert timed_out.status == 504
    assert timed_out.body == b"upstream request timeout"


def test_app_probe_rewrite_served_by_the_agent(lab: MeshLab) -> None:
    lab.service("httpbin", "apps", {"app": "httpbin"})
    server = lab.add_pod("httpbin-a", {"app": "httpbin"})
    prober = (
        '{"/app-health/app/readyz": {"httpGet": {"path": "/status/200", "port": 8000}, "timeoutSeconds": 1}}'
    )
    server.proxy.ctx.env = {"ISTIO_KUBE_APP_PROBERS": prober}
    with urllib.request.urlopen(f"http://{server.ip}:15020/app-health/app/readyz", timeout=10) as response:
        assert response.status == 200
    assert server.app.requests[-1]["path"] == "/status/200"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{server.ip}:15020/app-health/other/livez", timeout=10)
    assert missing.value.code == 404
    # PERMISSIVE by default, so the kubelet-style plaintext call also works on the app port
    assert plain_get(server.ip, 8000).status == 200


def test_original_destination_port_wins_over_the_host_header(lab: MeshLab) -> None:
    service_ip = lab.service("httpbin", "apps", {"app": "httpbin"})
    lab.add_pod("httpbin-a", {"app": "httpbin"})
    client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    for host in ("httpbin", "example.com", f"{service_ip}:8000"):
        assert mesh_get(client, service_ip, 8000, host=host).status == 200, host


def test_services_without_selector_and_unknown_addresses_pass_through(lab: MeshLab) -> None:
    outside_ip, _ = lab.addresses.take()
    outside = EchoApp((outside_ip, 8443))
    try:
        # a Service whose ClusterIP the lab's kube-proxy would serve; here the "ClusterIP" is the
        # external app's own address, as for the kubernetes Service and its API server endpoint
        lab.store.put(service("kubernetes", "default", outside_ip, {}, ports=(("https", 8443, 8443),)))
        client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
        assert mesh_get(client, outside_ip, 8443, "/api").status == 200
        assert outside.requests[-1]["path"] == "/api"
        passthrough = [
            s
            for s in iter_metric_lines(scrape(client.ip), "istio_tcp_connections_opened_total")
            if s["destination_service"] == "PassthroughCluster"
        ]
        assert passthrough and passthrough[0]["connection_security_policy"] == "none"
    finally:
        outside.close()


def test_secure_gateway_terminates_tls_with_its_credential(lab: MeshLab) -> None:
    gw_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    lab.service(
        "istio-ingressgateway",
        "istio-system",
        gw_labels,
        ports=(("status-port", 15021, 15021), ("http2", 80, 8080), ("https", 443, 8443)),
    )
    lab.service("productpage", "apps", {"app": "productpage"}, ports=(("http", 9080, 9080),))
    lab.add_pod("productpage-v1-a", {"app": "productpage", "version": "v1"}, ports=(9080,))
    issuer = MeshCA()
    key_pem, cert_pem = issuer.issue_serving(["bookinfo.example.com"])
    lab.store.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "bookinfo-credential", "namespace": "istio-system"},
            "data": {
                "tls.crt": base64.b64encode(cert_pem).decode(),
                "tls.key": base64.b64encode(key_pem).decode(),
            },
        }
    )
    gateway = lab.add_pod(
        "istio-ingressgateway-a",
        gw_labels,
        namespace="istio-system",
        ports=(8080, 8443),
        service_account="istio-ingressgateway-service-account",
        sidecar=False,
        router=True,
    )
    server = {
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-credential"},
        "hosts": ["bookinfo.example.com"],
    }
    lab.apply(
        istio("Gateway", "secure", "apps", {"selector": {"istio": "ingressgateway"}, "servers": [server]})
    )
    lab.apply(
        istio(
            "VirtualService",
            "bookinfo",
            "apps",
            {
                "hosts": ["bookinfo.example.com"],
                "gateways": ["secure"],
                "http": [{"route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}],
            },
        )
    )
    assert gateway.proxy.listening_ports() == [8443]
    context = ssl.create_default_context(cadata=issuer.root_pem.decode())
    raw = socket.create_connection((gateway.ip, 8443), timeout=WAIT)
    tls = context.wrap_socket(raw, server_hostname="bookinfo.example.com")
    try:
        response = http_exchange(tls, "/productpage", "bookinfo.example.com")
    finally:
        tls.close()
    assert response.status == 200
    assert json.loads(response.body)["path"] == "/productpage"
    # a plaintext client on the HTTPS port gets no HTTP answer
    plain = socket.create_connection((gateway.ip, 8443), timeout=WAIT)
    plain.sendall(b"GET / HTTP/1.1\r\nHost: bookinfo.example.com\r\n\r\n")
    received = b""
    with contextlib.suppress(ConnectionResetError):  # reset after the failed handshake
        while chunk := plain.recv(100):
            received += chunk
    plain.close()
    assert not received.startswith(b"HTTP/")
