"""The proxies' side of HTTP/1.1: a sniffable connection, and requests and responses to edit and re-send.

The proxies must understand HTTP to route per request, add headers and count bytes, but they must
not change what apps see beyond what Envoy changes. Messages are read whole (bodies de-chunked and
re-sent with Content-Length), which is all the lab's apps need and keeps keep-alive handling simple.
Responses that carry no body keep their framing as Envoy keeps it: an answer to HEAD and a 304
forward the upstream's Content-Length (it describes the resource, not bytes on the wire), 1xx and
204 carry none.
The framing itself (heads, bodies, limits, ``ProtocolError``) is the lab's one copy in
``httpframing``, the same the workloads' server uses.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass, field

from pytest_meshcheck.lab.httpframing import (
    Headers,
    ProtocolError,
    encode_head,
    ends_at_close,
    read_body,
    read_request_head,
    read_response_head,
    reason_phrase,
    response_has_body,
    status_has_body,
    wants_keep_alive,
)

#: Headers that say how a body is framed; the proxies set them from the message they send.
_FRAMING_HEADERS = ("content-length", "transfer-encoding")

HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
)


class Connection:
    """A socket (plain or TLS) with a read buffer, so bytes read while sniffing are not lost."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""
        self.bytes_read = 0
        self.bytes_written = 0

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        self.bytes_read += len(chunk)
        return chunk

    def _fill(self) -> bool:
        chunk = self._recv()
        self.buffer += chunk
        return bool(chunk)

    def peek(self, size: int) -> bytes:
        """At least ``size`` bytes if the peer sends them, without consuming them."""
        while len(self.buffer) < size and self._fill():
            pass
        return self.buffer[:size]

    def readline(self, size: int = -1, /) -> bytes:
        """Up to and including the next ``\\n``, at most ``size`` bytes; short only at EOF."""
        while b"\n" not in self.buffer and not 0 <= size <= len(self.buffer):
            if not self._fill():
                break
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if size >= 0:
            end = min(end, size)
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def read(self, size: int = -1, /) -> bytes:
        """``size`` bytes (all of them up to EOF when negative); short only at EOF."""
        parts, have = [self.buffer], len(self.buffer)
        self.buffer = b""
        try:
            while size < 0 or have < size:
                chunk = self._recv()
                if not chunk:
                    break
                parts.append(chunk)
                have += len(chunk)
        except BaseException:
            self.buffer = b"".join(parts)  # a timeout loses nothing already received
            raise
        data = b"".join(parts)
        if 0 <= size < len(data):
            data, self.buffer = data[:size], data[size:]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.bytes_written += len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def remove_header(self, name: str) -> None:
        self.headers.remove(name)

    def set_header(self, name: str, value: str) -> None:
        self.headers.set(name, value)

    def _unframed_headers(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k.lower() not in _FRAMING_HEADERS]

    def _framed_headers(self) -> list[tuple[str, str]]:
        return [*self._unframed_headers(), ("content-length", str(len(self.body)))]

    def wire_size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) + 4 for k, v in self.headers)


@dataclass
class Request(Message):
    method: str = "GET"
    target: str = "/"
    version: str = "HTTP/1.1"

    @property
    def keep_alive(self) -> bool:
        return wants_keep_alive(self.version, self.headers)

    def encode(self) -> bytes:
        bare = self.method in ("GET", "HEAD") and not self.body
        headers = list(self.headers) if bare else self._framed_headers()
        return encode_head(f"{self.method} {self.target} {self.version}", headers) + self.body


@dataclass
class Response(Message):
    status: int = 200
    reason: str = "OK"
    version: str = "HTTP/1.1"
    #: Body length was not framed: the peer closed to end it, so the connection cannot be reused.
    closes: bool = False
    #: Read without the body its head describes (the answer to a HEAD, or a 304): its
    #: Content-Length is the upstream's and is forwarded as it came.
    length_from_upstream: bool = False

    @property
    def keep_alive(self) -> bool:
        return not self.closes and wants_keep_alive(self.version, self.headers)

    def encode(self, *, head_only: bool = False) -> bytes:
        """The response on the wire; ``head_only`` for the answer to a HEAD, which says how long
        its body is (the upstream's Content-Length, or a local reply's own) without sending it."""
        if not status_has_body(self.status) and self.status != 304:
            headers = self._unframed_headers()  # 1xx and 204: no length, no body
        elif self.length_from_upstream:
            headers = [(k, v) for k, v in self.headers if k.lower() != "transfer-encoding"]
        else:
            headers = self._framed_headers()
        head = encode_head(f"{self.version} {self.status} {self.reason}", headers)
        return head + (self.body if status_has_body(self.status) and not head_only else b"")


def looks_like_http(first_bytes: bytes) -> bool:
    """Protocol sniffing on the first bytes a client sent (Envoy's http_inspector does the same)."""
    if not first_bytes:
        return False
    return any(m.startswith(first_bytes) or first_bytes.startswith(m) for m in HTTP_METHODS)


def read_request(conn: Connection) -> Request | None:
    """The next request, or None when the peer closed the connection between requests. A request
    that is not HTTP/1.x, or too large, is answered with the error's status (as Envoy answers a
    codec error) before the ``ProtocolError`` is raised."""
    try:
        head = read_request_head(conn)
        if head is None:
            return None
        method, target, version, headers = head
        request = Request(method=method, target=target, version=version, headers=headers)
        if (request.header("expect") or "").lower() == "100-continue":
            # answer for the upstream, as Envoy does, so clients like curl send the body at once
            request.remove_header("expect")
            if request.header("content-length") not in (None, "0") or request.header("transfer-encoding"):
                conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.body = read_body(conn, request.headers, until_close=False)
    except ProtocolError as error:
        refusal = simple_response(error.status, f"{error}\n")
        refusal.set_header("connection", "close")
        with contextlib.suppress(OSError):
            conn.send(refusal.encode())
        raise
    return request


def read_response(conn: Connection, request_method: str = "GET") -> Response:
    version, status, reason, headers = read_response_head(conn)
    response = Response(status=status, reason=reason, version=version, headers=headers)
    if response_has_body(request_method, status):
        response.body = read_body(conn, headers, until_close=True)
        response.closes = ends_at_close(headers)
    else:
        response.length_from_upstream = True
    return response


def simple_response(status: int, body: str, *, content_type: str = "text/plain") -> Response:
    return Response(
        status=status,
        reason=reason_phrase(status),
        headers=Headers([("content-type", content_type)]),
        body=body.encode(),
    )
