"""HTTP/1.1 framing as the lab's servers, clients and proxies all read it: over a socket's file and
over the proxies' buffered ``Connection`` alike."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from pytest_meshcheck.lab.httpframing import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    Headers,
    ProtocolError,
    Reader,
    ends_at_close,
    read_body,
    read_request_head,
    read_response_head,
    reason_phrase,
    response_has_body,
    wants_keep_alive,
)
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.mesh.httpio import Connection

Stream = Callable[[bytes], Reader]


@pytest.fixture(params=["file", "connection"])
def stream(request: pytest.FixtureRequest) -> Iterator[Stream]:
    """Bytes a peer sent and then closed, as a reader of the kind under test."""
    sockets: list[socket.socket] = []
    senders: list[threading.Thread] = []

    def make(data: bytes) -> Reader:
        if request.param == "file":
            return io.BufferedReader(io.BytesIO(data))
        sender, receiver = socket.socketpair()
        sockets.extend((sender, receiver))

        def send() -> None:
            with contextlib.suppress(OSError):
                sender.sendall(data)
                sender.shutdown(socket.SHUT_WR)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        senders.append(thread)
        return Connection(receiver)

    yield make
    for sock in sockets:
        sock.close()
    for thread in senders:
        thread.join(5)


def read_request(reader: Reader) -> tuple[str, str, Headers, bytes]:
    head = read_request_head(reader)
    assert head is not None
    method, target, _, headers = head
    return method, target, headers, read_body(reader, headers, until_close=False)


def read_response(reader: Reader, method: str = "GET") -> tuple[int, Headers, bytes]:
    _, status, _, headers = read_response_head(reader)
    body = read_body(reader, headers, until_close=True) if response_has_body(method, status) else b""
    return status, headers, body


def test_chunked_and_content_length_bodies_end_where_their_framing_says(stream: Stream) -> None:
    reader = stream(
        b"\r\n"  # an empty line before a request is tolerated
        b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: dropped\r\n\r\n"
        b"PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert read_request(reader)[::3] == ("POST", b"abcde")
    method, target, headers, body = read_request(reader)
    assert (method, target, headers.get("content-length"), body) == ("PUT", "/b", "5", b"hello")
    assert read_request(reader)[::3] == ("GET", b"")
    assert read_request_head(reader) is None  # a clean close between requests


def test_headers_keep_their_order_and_spelling(stream: Stream) -> None:
    reader = stream(b"GET / HTTP/1.1\r\nX-B: 1\r\nHost:  h \r\nx-b: 2\r\n\r\n")
    _, _, headers, _ = read_request(reader)
    assert list(headers) == [("X-B", "1"), ("Host", "h"), ("x-b", "2")]
    assert headers.get_all("x-B") == ["1", "2"]


def test_a_response_without_length_ends_at_close(stream: Stream) -> None:
    _, status, reason, headers = read_response_head(stream(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\n"))
    assert (status, reason, ends_at_close(headers)) == (200, "OK", True)
    assert read_response(stream(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nuntil the end"))[2] == b"until the end"
    framed = read_response_head(stream(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))[3]
    assert not ends_at_close(framed)


def test_head_1xx_204_and_304_responses_have_no_body(stream: Stream) -> None:
    reader = stream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"  # the answer to a HEAD
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    )
    head = read_response(reader, "HEAD")
    assert (head[0], head[1].get("Content-Length"), head[2]) == (200, "5", b"")
    assert [read_response(reader)[::2] for _ in range(4)] == [
        (100, b""),
        (204, b""),
        (304, b""),
        (200, b"hello"),
    ]


def test_oversize_heads_and_bodies_are_refused_with_431_and_413(stream: Stream) -> None:
    big_field = b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    many_fields = b"X-Small: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * (MAX_HEAD_BYTES // 30)
    cases = [
        (b"GET / HTTP/1.1\r\n" + big_field + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + many_fields + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY_BYTES + 1), 413),
    ]
    for data, status in cases:
        with pytest.raises(ProtocolError) as refused:
            read_request(stream(data))
        assert refused.value.status == status


def test_a_response_body_past_the_limit_is_refused_even_when_it_ends_at_close(stream: Stream) -> None:
    with pytest.raises(ProtocolError) as refused:
        read_response(stream(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * (MAX_BODY_BYTES + 1)))
    assert refused.value.status == 413


def test_a_reader_with_its_own_limits_passes_them(stream: Stream) -> None:
    small = Headers([("Content-Length", "4")])
    assert read_body(stream(b"four"), small, until_close=False, max_bytes=4) == b"four"
    over = [
        (Headers([("Content-Length", "5")]), b"fives"),
        (Headers([("Transfer-Encoding", "chunked")]), b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        (Headers(), b"until close"),
    ]
    for headers, data in over:
        with pytest.raises(ProtocolError) as refused:
            read_body(stream(data), headers, until_close=True, max_bytes=4)
        assert refused.value.status == 413
    big_field = b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    _, status, _, headers = read_response_head(
        stream(b"HTTP/1.1 200 OK\r\n" + big_field + b"\r\n"), max_bytes=2 * MAX_HEAD_BYTES
    )
    assert (status, len(headers.get("X-Big") or "")) == (200, MAX_HEAD_BYTES)
    with pytest.raises(ProtocolError) as refused:
        read_request_head(stream(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), max_bytes=20)
    assert refused.value.status == 431


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nName : space before the colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: line\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",  # the peer closed inside the body
        b"GET / HTTP/1.1\r\nHost: h\r\n",  # ... inside the head
    ],
)
def test_malformed_or_truncated_requests_are_400(stream: Stream, data: bytes) -> None:
    with pytest.raises(ProtocolError) as refused:
        read_request(stream(data))
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "data", [b"", b"HTTP/1.1 OK\r\n\r\n", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 Big\r\n\r\n"]
)
def test_no_or_malformed_status_line_is_a_protocol_error(stream: Stream, data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_response_head(stream(data))


def test_keep_alive_follows_the_version_and_connection_tokens() -> None:
    assert wants_keep_alive("HTTP/1.1", Headers())
    assert not wants_keep_alive("HTTP/1.1", Headers([("Connection", "Upgrade, Close")]))
    assert not wants_keep_alive("HTTP/1.0", Headers())
    assert wants_keep_alive("HTTP/1.0", Headers([("connection", "keep-alive")]))


def test_reason_phrases() -> None:
    assert [reason_phrase(s) for s in (200, 413, 431, 503, 799)] == [
        "OK",
        "Request Entity Too Large",
        "Request Header Fields Too Large",
        "Service Unavailable",
        "Unknown",
    ]


# --- the server, as a client sees it ---------------------------------------------------------


@pytest.fixture
def server() -> Iterator[HttpServer]:
    def handle(request: Request) -> Response:
        if request.path == "/empty":
            return Response(status=204, body=b"not sent")
        return Response(body=b"hello " + request.body)

    server = HttpServer("127.0.0.1", 0, handle, name="framing-test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def exchange(server: HttpServer, data: bytes) -> bytes:
    with socket.create_connection((server.ip, server.port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


def test_server_answers_head_and_204_without_a_body_and_keeps_the_connection(server: HttpServer) -> None:
    reply = exchange(
        server,
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /empty HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nworld\r\n0\r\n\r\n",
    )
    reader = io.BufferedReader(io.BytesIO(reply))
    head = read_response(reader, "HEAD")
    assert (head[0], head[1].get("Content-Length"), head[2]) == (200, "6", b"")
    empty = read_response(reader)
    assert (empty[0], empty[1].get("Content-Length"), empty[2]) == (204, None, b"")
    assert read_response(reader)[::2] == (200, b"hello world")
    assert reader.read() == b""


def test_server_refuses_oversize_and_malformed_requests(server: HttpServer) -> None:
    big_field = b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    assert exchange(server, b"GET / HTTP/1.1\r\n" + big_field + b"\r\n").startswith(b"HTTP/1.1 431 ")
    too_long = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)
    assert exchange(server, too_long).startswith(b"HTTP/1.1 413 ")
    assert exchange(server, b"GET / HTTP/1.1\r\nbad header\r\n\r\n").startswith(b"HTTP/1.1 400 ")
