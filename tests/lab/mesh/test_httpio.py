from __future__ import annotations

import socket

from pytest_meshcheck.lab.mesh.httpio import Connection, Request, looks_like_http, read_request, read_response


def pair() -> tuple[Connection, Connection]:
    a, b = socket.socketpair()
    return Connection(a), Connection(b)


def test_chunked_bodies_are_reframed_with_content_length() -> None:
    client, server = pair()
    client.send(
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    request = read_request(server)
    assert request is not None and request.body == b"abcde"
    assert b"content-length: 5" in request.encode() and b"chunked" not in request.encode().lower()


def test_expect_continue_is_answered_by_the_proxy() -> None:
    client, server = pair()
    client.send(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    client.send(b"data")
    request = read_request(server)
    assert request is not None and request.body == b"data" and request.header("expect") is None
    assert client.read_line() == b"HTTP/1.1 100 Continue"


def test_response_without_length_ends_at_close_and_is_not_reused() -> None:
    upstream, proxy = pair()
    upstream.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello")
    upstream.sock.shutdown(socket.SHUT_WR)
    response = read_response(proxy, "GET")
    assert (response.status, response.body, response.keep_alive) == (200, b"hello", False)


def test_keep_alive_rules_and_sniffing() -> None:
    assert Request(version="HTTP/1.1").keep_alive
    assert not Request(version="HTTP/1.1", headers=[("Connection", "close")]).keep_alive
    assert not Request(version="HTTP/1.0").keep_alive
    assert looks_like_http(b"GET ") and looks_like_http(b"PO") and not looks_like_http(b"\x16\x03\x01")
    assert not looks_like_http(b"")
