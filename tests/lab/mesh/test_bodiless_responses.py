"""Responses without a body (to HEAD, 304, 204) keep their framing headers through the sidecars, as
through Envoy: HEAD and 304 answers keep the upstream's Content-Length (it describes the resource,
not a body on the wire), 204s carry none, and the connection stays usable after each of them."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from meshlab_env import WAIT, MeshLab
from meshlab_fakes import serve_http, stop_http

from pytest_meshcheck.lab.httpframing import Headers
from pytest_meshcheck.lab.mesh.httpio import Connection, Request, Response, read_response, simple_response

#: The size of the resource the app describes in its HEAD and 304 answers.
RESOURCE_LENGTH = "1234"


class BodilessApp:
    """An app answering HEAD with a Content-Length and no body, ``/not-modified`` with a 304 that
    has one, and ``/no-content`` with a bare 204; anything else gets ``hello``."""

    def __init__(self, address: tuple[str, int]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", RESOURCE_LENGTH)
                self.end_headers()

            def do_GET(self) -> None:
                if self.path == "/not-modified":
                    self.send_response(304)
                    self.send_header("ETag", '"v1"')
                    self.send_header("Content-Length", RESOURCE_LENGTH)
                    self.end_headers()
                elif self.path == "/no-content":
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"hello")

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = serve_http(address, Handler)

    def close(self) -> None:
        stop_http(self.server)


def exchange(conn: Connection, method: str, path: str, host: str) -> Response:
    conn.send(Request(method=method, target=path, headers=Headers([("Host", host)])).encode())
    return read_response(conn, method)


def test_head_304_and_204_keep_the_upstreams_framing_through_both_sidecars(lab: MeshLab) -> None:
    service_ip = lab.service("files", "apps", {"app": "files"})
    server = lab.add_pod("files-a", {"app": "files"}, http_apps=False)
    app = BodilessApp((server.local, 8000))
    try:
        client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
        host = "files.apps.svc.cluster.local:8000"
        # the client's app, captured by its sidecar: out through it, in through the server's sidecar
        sock = socket.create_connection((client.ip, 15001), timeout=WAIT)
        conn = Connection(sock)
        try:
            conn.send(f"PROXY TCP4 {client.local} {service_ip} 40000 8000\r\n".encode())
            head = exchange(conn, "HEAD", "/file", host)
            assert (head.status, head.header("content-length"), head.body) == (200, RESOURCE_LENGTH, b"")
            assert head.header("server") == "istio-envoy"  # it did pass the server's sidecar
            not_modified = exchange(conn, "GET", "/not-modified", host)
            assert not_modified.status == 304
            assert not_modified.header("content-length") == RESOURCE_LENGTH
            assert not_modified.header("etag") == '"v1"'
            no_content = exchange(conn, "GET", "/no-content", host)
            assert no_content.status == 204
            assert no_content.header("content-length") is None
            assert no_content.header("transfer-encoding") is None
            # nothing the framing promised is left on the wire: the next answer reads cleanly
            after = exchange(conn, "GET", "/next", host)
            assert (after.status, after.body) == (200, b"hello")
        finally:
            conn.close()
    finally:
        app.close()


def test_local_replies_to_head_say_how_long_their_body_would_be() -> None:
    """A reply the proxy makes itself (here a 503) keeps the length of the body it leaves out."""
    wire = simple_response(503, "no healthy upstream").encode(head_only=True)
    assert wire.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert wire.endswith(b"\r\ncontent-length: 19\r\n\r\n")


@pytest.mark.parametrize("status", [101, 204])
def test_1xx_and_204_carry_no_length_even_when_the_upstream_sent_one(status: int) -> None:
    upstream, proxy = (Connection(end) for end in socket.socketpair())
    try:
        upstream.send(b"HTTP/1.1 %d Whatever\r\nX-A: b\r\nContent-Length: 0\r\n\r\n" % status)
        response = read_response(proxy, "GET")
        assert response.encode() == b"HTTP/1.1 %d Whatever\r\nX-A: b\r\n\r\n" % status
    finally:
        upstream.close()
        proxy.close()
