from __future__ import annotations

import fnmatch
import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest

from pytest_meshcheck.lab.contract import WorkloadFactory
from pytest_meshcheck.lab.httpframing import Headers
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.workloads import register_workloads
from pytest_meshcheck.lab.workloads.httpbin import Httpbin, go_httpbin_factory, kennethreitz_httpbin_factory
from pytest_meshcheck.lab.workloads.idle import idle_factory
from pytest_meshcheck.lab.workloads.productpage import productpage_factory
from pytest_meshcheck.lab.workloads.reviews import reviews_factory

from .conftest import PodNet

GO_HTTPBIN = "docker.io/mccutchen/go-httpbin:v2.15.0"
XFCC = 'By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=abc;Subject="";URI=spiffe://cluster.local/ns/foo/sa/curl'


def request(
    ip: str,
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str = "",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def fetch_json(ip: str, port: int, path: str, **kwargs: Any) -> Any:
    status, _, body = request(ip, port, path, **kwargs)
    assert status == 200, body
    return json.loads(body)


def test_go_httpbin_headers_show_xfcc_as_lists(podnet: PodNet) -> None:
    _, ctx = podnet.start(go_httpbin_factory, name="httpbin", image=GO_HTTPBIN)
    headers = fetch_json(ctx.pod_ip, 8080, "/headers", headers={"x-forwarded-client-cert": XFCC})["headers"]
    assert headers["X-Forwarded-Client-Cert"] == [XFCC]
    assert headers["Host"] == [f"{ctx.pod_ip}:8080"]
    assert fetch_json(ctx.pod_ip, 8080, "/ip") == {"origin": "127.0.0.1"}
    assert fetch_json(ctx.pod_ip, 8080, "/ip", headers={"X-Forwarded-For": "10.1.2.3, 10.0.0.1"}) == {
        "origin": "10.1.2.3"
    }


def test_go_httpbin_endpoints(podnet: PodNet) -> None:
    _, ctx = podnet.start(go_httpbin_factory, name="httpbin", image=GO_HTTPBIN)
    ip = ctx.pod_ip
    assert fetch_json(ip, 8080, "/user-agent", headers={"User-Agent": "probe/2"}) == {"user-agent": "probe/2"}
    assert len(fetch_json(ip, 8080, "/uuid")["uuid"]) == 36
    echo = fetch_json(ip, 8080, "/get?a=1&a=2")
    assert echo["args"] == {"a": ["1", "2"]}
    assert echo["url"] == f"http://{ip}:8080/get?a=1&a=2"
    anything = fetch_json(ip, 8080, "/anything/x", method="POST", body='{"k": 2}')
    assert (anything["method"], anything["json"]) == ("POST", {"k": 2})
    status, headers, _ = request(ip, 8080, "/response-headers?X-Test=yes")
    assert (status, headers["X-Test"]) == (200, "yes")
    assert request(ip, 8080, "/status/503")[0] == 503
    assert request(ip, 8080, "/status/abc")[0] == 400
    assert request(ip, 8080, "/nowhere")[0] == 404


def test_go_httpbin_port_follows_its_flags(podnet: PodNet) -> None:
    _, ctx = podnet.start(go_httpbin_factory, name="httpbin", image=GO_HTTPBIN, args=("-port", "8090"))
    assert request(ctx.pod_ip, 8090, "/status/200")[0] == 200


def test_kennethreitz_httpbin_joins_values(podnet: PodNet) -> None:
    _, ctx = podnet.start(
        kennethreitz_httpbin_factory, name="httpbin", image="docker.io/kennethreitz/httpbin"
    )
    headers = fetch_json(ctx.pod_ip, 80, "/headers", headers={"X-Forwarded-Client-Cert": XFCC})["headers"]
    assert headers["X-Forwarded-Client-Cert"] == XFCC
    assert fetch_json(ctx.pod_ip, 80, "/get?a=1")["args"] == {"a": "1"}


def test_delay_is_cut_short_when_the_server_stops(podnet: PodNet) -> None:
    workload, ctx = podnet.start(go_httpbin_factory, name="httpbin", image=GO_HTTPBIN)
    assert fetch_json(ctx.pod_ip, 8080, "/delay/0")["url"].endswith("/delay/0")
    assert isinstance(workload, Httpbin)
    stopped = threading.Event()
    stopped.set()
    pending = Request(
        method="GET",
        target="/delay/10",
        version="HTTP/1.1",
        headers=Headers([("Host", "httpbin:8080")]),
        body=b"",
        client_ip="127.0.0.1",
        client_port=40000,
        server_ip=ctx.pod_ip,
        server_port=8080,
        cancelled=stopped,
    )
    assert workload.handle(pending).status == 503


def status_when_stopped(server: HttpServer, reached: threading.Event) -> int:
    """Start ``server``, send it one request, stop it once the request has ``reached`` the point
    under test, and return the status its client got (-1: the connection was cut instead)."""
    server.start()
    results: list[int] = []

    def call() -> None:
        try:
            results.append(request(server.ip, server.port, "/")[0])
        except (ConnectionError, http.client.HTTPException):
            results.append(-1)

    caller = threading.Thread(target=call)
    caller.start()
    assert reached.wait(10)
    server.stop()
    caller.join(10)
    assert not caller.is_alive()
    (status,) = results
    return status


def test_stop_cuts_a_request_in_flight_and_joins_its_thread(podnet: PodNet) -> None:
    entered = threading.Event()

    def slow(request: Request) -> Response:
        entered.set()
        request.cancelled.wait(30)
        return Response(status=503 if request.cancelled.is_set() else 200)

    before = set(threading.enumerate())
    assert status_when_stopped(HttpServer(podnet.address(), 0, slow), entered) == 503
    assert [thread for thread in threading.enumerate() if thread not in before] == []


def test_stop_lets_an_answer_being_written_reach_its_client(podnet: PodNet) -> None:
    """The handler has returned but its answer is not sent yet when ``stop`` comes: that
    connection is not idle, and cutting it loses the answer (a CI flake). The access log runs in
    exactly that window, so ``stop`` is called from inside it."""
    logging = threading.Event()

    def answer(request: Request) -> Response:
        return Response(status=200)

    def slow_log(request: Request, response: Response) -> None:
        logging.set()
        time.sleep(0.3)  # holds the window open while stop runs; there is nothing to await

    server = HttpServer(podnet.address(), 0, answer, access_log=slow_log)
    assert status_when_stopped(server, logging) == 200


def test_idle_workload_starts_and_stops(podnet: PodNet) -> None:
    workload, _ = podnet.start(idle_factory, name="sleep", image="curlimages/curl:8.16.0")
    workload.stop()
    assert podnet.logs["sleep"].lines == []


def test_registered_patterns_cover_the_sample_images() -> None:
    registered: dict[str, WorkloadFactory] = {}

    def register(pattern: str, factory: WorkloadFactory) -> None:
        assert pattern not in registered
        registered[pattern] = factory

    register_workloads(register)

    def factory_for(repository: str) -> WorkloadFactory:
        matches = [
            factory for pattern, factory in registered.items() if fnmatch.fnmatchcase(repository, pattern)
        ]
        assert matches, repository
        return matches[0]

    for prefix in ("docker.io/istio", "istio", "registry.istio.io/release"):
        assert factory_for(f"{prefix}/examples-bookinfo-productpage-v1") is productpage_factory
        for version in ("v1", "v2", "v3"):
            assert factory_for(f"{prefix}/examples-bookinfo-reviews-{version}") is reviews_factory
    assert factory_for("docker.io/mccutchen/go-httpbin") is go_httpbin_factory
    assert factory_for("mccutchen/go-httpbin") is go_httpbin_factory
    assert factory_for("docker.io/kennethreitz/httpbin") is kennethreitz_httpbin_factory
    assert factory_for("docker.io/curlimages/curl") is idle_factory
    assert factory_for("curlimages/curl") is idle_factory
    with pytest.raises(AssertionError):
        factory_for("docker.io/library/nginx")


def test_server_survives_malformed_requests_and_speaks_http_1_0(podnet: PodNet) -> None:
    _, ctx = podnet.start(go_httpbin_factory, name="httpbin", image=GO_HTTPBIN)
    with socket.create_connection((ctx.pod_ip, 8080), timeout=10) as conn:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection((ctx.pod_ip, 8080), timeout=10) as conn:
        conn.sendall(b"GET /ip HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in reply
    with socket.create_connection((ctx.pod_ip, 8080), timeout=10) as conn:
        conn.sendall(
            b"POST /anything HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["data"] == "abcde"
