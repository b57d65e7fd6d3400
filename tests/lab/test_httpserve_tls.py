"""The lab's HTTP server over TLS: keep-alive works, and stopping it ends kept-alive connections."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.pki import CertificateAuthority

IP = "127.0.0.1"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HttpServer, ssl.SSLContext]]:
    ca = CertificateAuthority()
    cert, key = ca.issue("istiod", ip_addresses=(IP,)).write(tmp_path, "serving")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cadata=ca.cert_pem.decode())

    def echo_path(request: Request) -> Response:
        return Response(body=request.path.encode())

    server = HttpServer(IP, 0, echo_path, name="tls-test", tls=server_context)
    server.start()
    try:
        yield server, client_context
    finally:
        server.stop()


def exchange(conn: ssl.SSLSocket, path: str) -> bytes:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {IP}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed")
        head += chunk
    head, _, body = head.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(body) < length:
        body += conn.recv(4096)
    return body


def test_two_requests_on_one_tls_connection_then_stop_ends_it(
    tls_server: tuple[HttpServer, ssl.SSLContext],
) -> None:
    server, client_context = tls_server
    raw = socket.create_connection((IP, server.port), timeout=10)
    with client_context.wrap_socket(raw, server_hostname=IP) as conn:
        assert exchange(conn, "/one") == b"/one"
        assert exchange(conn, "/two") == b"/two"
        server.stop()
        with pytest.raises((OSError, ConnectionResetError)):
            exchange(conn, "/three")


def test_a_client_that_fails_the_handshake_does_not_stop_the_server(
    tls_server: tuple[HttpServer, ssl.SSLContext],
) -> None:
    server, client_context = tls_server
    with socket.create_connection((IP, server.port), timeout=10) as plaintext:
        plaintext.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):  # closed or reset: ended either way
            while plaintext.recv(4096):  # a TLS alert at most; a server that hung would time out here
                pass
    raw = socket.create_connection((IP, server.port), timeout=10)
    with client_context.wrap_socket(raw, server_hostname=IP) as conn:
        assert exchange(conn, "/after") == b"/after"
