"""HTTP/1.1 message framing for the proxies: read, edit and re-send requests and responses.

The proxies must understand HTTP to route per request, add headers and count bytes, but they must
not change what apps see beyond what Envoy changes. Messages are read whole (bodies de-chunked and
re-sent with Content-Length), which is all the lab's apps need and keeps keep-alive handling simple.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass, field

MAX_LINE = 65536
MAX_HEADERS = 200
MAX_BODY = 64 * 1024 * 1024
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

REASONS = {
    200: "OK",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.x."""


class Connection:
    """A socket (plain or TLS) with a read buffer, so bytes read while sniffing are not lost."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""
        self.bytes_read = 0
        self.bytes_written = 0

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.bytes_read += len(chunk)
        self.buffer += chunk
        return True

    def peek(self, size: int) -> bytes:
        """At least ``size`` bytes if the peer sends them, without consuming them."""
        while len(self.buffer) < size and self._fill():
            pass
        return self.buffer[:size]

    def read_line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ProtocolError("line too long")
            if not self._fill():
                if self.buffer:
                    raise ProtocolError("connection closed mid-line")
                return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ProtocolError("connection closed mid-body")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_close(self) -> bytes:
        while self._fill():
            if len(self.buffer) > MAX_BODY:
                raise ProtocolError("body too large")
        data, self.buffer = self.buffer, b""
        return data

    def recv_some(self) -> bytes:
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        data = self.sock.recv(65536)
        self.bytes_read += len(data)
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.bytes_written += len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Message:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def remove_header(self, name: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]

    def set_header(self, name: str, value: str) -> None:
        self.remove_header(name)
        self.headers.append((name, value))

    def _framed_headers(self) -> list[tuple[str, str]]:
        headers = [
            (k, v) for k, v in self.headers if k.lower() not in ("content-length", "transfer-encoding")
        ]
        headers.append(("content-length", str(len(self.body))))
        return headers

    def wire_size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) + 4 for k, v in self.headers)


@dataclass
class Request(Message):
    method: str = "GET"
    target: str = "/"
    version: str = "HTTP/1.1"

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def encode(self) -> bytes:
        head = [f"{self.method} {self.target} {self.version}"]
        headers = self.headers if self.method in ("GET", "HEAD") and not self.body else self._framed_headers()
        head += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Response(Message):
    status: int = 200
    reason: str = "OK"
    version: str = "HTTP/1.1"
    #: Body length was not framed: the peer closed to end it, so the connection cannot be reused.
    closes: bool = False

    @property
    def keep_alive(self) -> bool:
        if self.closes:
            return False
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def encode(self, *, head_only: bool = False) -> bytes:
        head = [f"{self.version} {self.status} {self.reason}"]
        headers = self._framed_headers()
        head += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else self.body)


def looks_like_http(first_bytes: bytes) -> bool:
    """Protocol sniffing on the first bytes a client sent (Envoy's http_inspector does the same)."""
    if not first_bytes:
        return False
    return any(m.startswith(first_bytes) or first_bytes.startswith(m) for m in HTTP_METHODS)


def _read_headers(conn: Connection) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = conn.read_line()
        if line is None:
            raise ProtocolError("connection closed in headers")
        if not line:
            return headers
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError("too many headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError("malformed header")
        headers.append((name.strip(), value.strip()))


def _read_chunked(conn: Connection) -> bytes:
    body = b""
    while True:
        size_line = conn.read_line()
        if size_line is None:
            raise ProtocolError("connection closed in chunked body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers
                trailer = conn.read_line()
                if not trailer:
                    return body
        body += conn.read_exact(size)
        if len(body) > MAX_BODY:
            raise ProtocolError("body too large")
        conn.read_exact(2)


def _read_body(conn: Connection, message: Message, *, until_close: bool) -> tuple[bytes, bool]:
    encoding = (message.header("transfer-encoding") or "").lower()
    if "chunked" in encoding:
        return _read_chunked(conn), False
    length = message.header("content-length")
    if length is not None:
        size = int(length)
        if size < 0 or size > MAX_BODY:
            raise ProtocolError("bad content-length")
        return conn.read_exact(size), False
    if until_close:
        return conn.read_to_close(), True
    return b"", False


def read_request(conn: Connection) -> Request | None:
    """The next request, or None when the peer closed the connection between requests."""
    line = conn.read_line()
    while line == b"":
        line = conn.read_line()
    if line is None:
        return None
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad request line {line[:80]!r}")
    request = Request(method=parts[0], target=parts[1], version=parts[2])
    request.headers = _read_headers(conn)
    if (request.header("expect") or "").lower() == "100-continue":
        # answer for the upstream, as Envoy does, so clients like curl send the body at once
        request.remove_header("expect")
        if request.header("content-length") not in (None, "0") or request.header("transfer-encoding"):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.body, _ = _read_body(conn, request, until_close=False)
    return request


def read_response(conn: Connection, request_method: str = "GET") -> Response:
    line = conn.read_line()
    if line is None:
        raise ProtocolError("connection closed before the response")
    version, _, rest = line.decode("latin-1").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"bad status line {line[:80]!r}")
    response = Response(status=int(code), reason=reason, version=version)
    response.headers = _read_headers(conn)
    if request_method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
        return response
    response.body, response.closes = _read_body(conn, response, until_close=True)
    return response


def simple_response(status: int, body: str, *, content_type: str = "text/plain") -> Response:
    return Response(
        status=status,
        reason=REASONS.get(status, "Unknown"),
        headers=[("content-type", content_type)],
        body=body.encode(),
    )
