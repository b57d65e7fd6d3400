from __future__ import annotations

import socket

import pytest

from pytest_meshcheck.lab.httpframing import MAX_HEAD_BYTES, Headers, ProtocolError
from pytest_meshcheck.lab.mesh.httpio import (
    Connection,
    Request,
    looks_like_http,
    read_request,
    read_response,
    simple_response,
)


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
    assert client.readline() == b"HTTP/1.1 100 Continue\r\n"


def test_response_without_length_ends_at_close_and_is_not_reused() -> None:
    upstream, proxy = pair()
    upstream.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello")
    upstream.sock.shutdown(socket.SHUT_WR)
    response = read_response(proxy, "GET")
    assert (response.status, response.body, response.keep_alive) == (200, b"hello", False)


def test_framed_responses_keep_the_connection_for_the_next_one() -> None:
    upstream, proxy = pair()
    upstream.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"  # the answer to a HEAD
        b"HTTP/1.1 304 Not Modified\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    head = read_response(proxy, "HEAD")
    assert (head.status, head.body, head.keep_alive) == (200, b"", True)
    not_modified = read_response(proxy, "GET")
    assert (not_modified.status, not_modified.body, not_modified.keep_alive) == (304, b"", True)
    chunked = read_response(proxy, "GET")
    assert (chunked.body, chunked.keep_alive) == (b"ok", True)
    assert chunked.encode() == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_sniffed_bytes_are_still_read_as_the_request() -> None:
    client, server = pair()
    client.send(b"GET /sniffed HTTP/1.1\r\nHost: h\r\n\r\n")
    assert looks_like_http(server.peek(4))
    request = read_request(server)
    assert request is not None and (request.method, request.target) == ("GET", "/sniffed")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
    ],
)
def test_a_request_the_proxy_cannot_read_is_answered_with_the_error_status(data: bytes, status: int) -> None:
    client, server = pair()
    client.sock.settimeout(10)
    client.send(data)
    with pytest.raises(ProtocolError):
        read_request(server)
    response = read_response(client, "GET")
    assert (response.status, response.keep_alive) == (status, False)


def test_keep_alive_rules_reasons_and_sniffing() -> None:
    assert Request(version="HTTP/1.1").keep_alive
    assert not Request(version="HTTP/1.1", headers=Headers([("Connection", "close")])).keep_alive
    assert not Request(version="HTTP/1.0").keep_alive
    assert (simple_response(503, "").reason, simple_response(429, "").reason) == (
        "Service Unavailable",
        "Too Many Requests",
    )
    assert looks_like_http(b"GET ") and looks_like_http(b"PO") and not looks_like_http(b"\x16\x03\x01")
    assert not looks_like_http(b"")
