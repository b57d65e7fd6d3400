"""HTTP/1.1 message framing: the one copy the lab's servers, clients and proxies share.

Heads (start line and header fields), bodies (Content-Length, chunked, or up to the end of the
stream), reason phrases, which messages carry a body and whether a connection stays open. Everything
reads from a ``Reader``: a socket's ``makefile("rb")`` is one, and so is the proxies' buffered,
sniffable ``Connection``. A peer that does not speak HTTP/1.x gets a ``ProtocolError`` carrying the
status a server answers it with (400, 413 for a body too large, 431 for a head too large). The limits
default to the servers' (``MAX_HEAD_BYTES``, ``MAX_BODY_BYTES``); a reader with other limits (the
API server's 3 MiB bodies, curl's larger downloads) passes its own.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Iterator
from typing import Protocol

#: Heads larger than this are refused (431) unless the caller sets its own limit.
MAX_HEAD_BYTES = 64 * 1024
#: Bodies larger than this are refused (413) unless the caller sets its own limit.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: A chunk-size line (hex size and extensions) longer than this is not a chunk-size line.
MAX_CHUNK_LINE = 1024


class Reader(Protocol):
    """What framing reads from: ``readline`` and ``read`` as a buffered binary file has them
    (``readline(limit)`` stops after ``\\n`` or ``limit`` bytes; both return short only at EOF)."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.x; ``status`` is what a server answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """An ordered, case-insensitive multi-map, because HTTP allows repeated fields and clients
    (httpbin's ``/headers``, XFCC checks) care about the order and spelling they were sent in."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(name, value) for name, value in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        wanted = name.lower()
        self._items = [(key, value) for key, value in self._items if key.lower() != wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def status_has_body(status: int) -> bool:
    """1xx, 204 and 304 responses never carry a body, whatever their headers say."""
    return status >= 200 and status not in (204, 304)


def response_has_body(request_method: str, status: int) -> bool:
    return request_method != "HEAD" and status_has_body(status)


def wants_keep_alive(version: str, headers: Headers) -> bool:
    tokens = {token.strip().lower() for token in (headers.get("Connection") or "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def encode_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_head(reader: Reader, *, max_bytes: int = MAX_HEAD_BYTES) -> list[str] | None:
    """The start line and header lines of one message; ``None`` on a clean end of stream.
    A head (all its lines) longer than ``max_bytes`` is refused with 431."""
    lines: list[str] = []
    size = 0
    while True:
        line = reader.readline(max_bytes + 1)
        if not line:
            if lines:
                raise ProtocolError("connection closed inside the message head")
            return None
        size += len(line)
        if size > max_bytes:
            raise ProtocolError("message head too large", 431)
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # tolerated empty lines before a request (RFC 9112 section 2.2)
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


def parse_header_lines(lines: list[str]) -> Headers:
    headers = Headers()
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"malformed header line: {line[:60]!r}")
        headers.add(name, value.strip())
    return headers


def parse_request_line(line: str) -> tuple[str, str, str]:
    """``METHOD target HTTP/1.x`` -> (method, target, version)."""
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"malformed request line: {line[:60]!r}")
    return parts[0], parts[1], parts[2]


def parse_status_line(line: str) -> tuple[str, int, str]:
    """``HTTP/1.x code reason`` -> (version, status, reason); the reason may be empty."""
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"malformed status line: {line[:60]!r}")
    return version, int(code), reason


def read_request_head(
    reader: Reader, *, max_bytes: int = MAX_HEAD_BYTES
) -> tuple[str, str, str, Headers] | None:
    """(method, target, version, headers) of the next request; ``None`` when the peer closed the
    connection between requests."""
    head = read_head(reader, max_bytes=max_bytes)
    if head is None:
        return None
    method, target, version = parse_request_line(head[0])
    return method, target, version, parse_header_lines(head[1:])


def read_response_head(reader: Reader, *, max_bytes: int = MAX_HEAD_BYTES) -> tuple[str, int, str, Headers]:
    """(version, status, reason, headers) of the next response."""
    head = read_head(reader, max_bytes=max_bytes)
    if head is None:
        raise ProtocolError("connection closed before the response")
    version, status, reason = parse_status_line(head[0])
    return version, status, reason, parse_header_lines(head[1:])


def ends_at_close(headers: Headers) -> bool:
    """Neither chunked nor Content-Length: a response body then ends where the connection does."""
    return not _chunked(headers) and headers.get("Content-Length") is None


def read_body(
    reader: Reader, headers: Headers, *, until_close: bool, max_bytes: int = MAX_BODY_BYTES
) -> bytes:
    """The body that follows a head: chunked, Content-Length, or (responses only) up to EOF.
    A body longer than ``max_bytes`` is refused with 413: a Content-Length before anything is read,
    chunks and an until-close body as soon as they pass it."""
    if _chunked(headers):
        return _read_chunked(reader, max_bytes)
    length_text = headers.get("Content-Length")
    if length_text is not None:
        try:
            length = int(length_text)
        except ValueError:
            raise ProtocolError("invalid Content-Length") from None
        if length < 0:
            raise ProtocolError("invalid Content-Length")
        if length > max_bytes:
            raise ProtocolError("body too large", 413)
        data = reader.read(length)
        if len(data) < length:
            raise ProtocolError("connection closed inside the body")
        return data
    if until_close:
        data = reader.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ProtocolError("body too large", 413)
        return data
    return b""


def _chunked(headers: Headers) -> bool:
    return "chunked" in (headers.get("Transfer-Encoding") or "").lower()


def _read_chunked(reader: Reader, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = reader.readline(MAX_CHUNK_LINE)
        if not size_line:
            raise ProtocolError("connection closed inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("invalid chunk size") from None
        if size < 0:
            raise ProtocolError("invalid chunk size")
        if size == 0:
            while reader.readline(MAX_HEAD_BYTES) not in (b"\r\n", b"\n", b""):
                pass  # trailers are read and dropped
            return b"".join(parts)
        total += size
        if total > max_bytes:
            raise ProtocolError("body too large", 413)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise ProtocolError("connection closed inside a chunk")
        parts.append(chunk)
        reader.readline(16)  # the CRLF that ends the chunk
