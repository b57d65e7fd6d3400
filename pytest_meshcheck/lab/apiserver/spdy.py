"""The server side of SPDY/3.1 as kubectl's ``port-forward`` uses it (``portforward.k8s.io``).

kubectl 1.32 tunnels SPDY through a WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``): the
WebSocket's binary messages carry the SPDY byte stream. Per forwarded connection kubectl opens two
SPDY streams carrying the headers ``streamtype`` (``error`` or ``data``), ``port`` and
``requestid``; the server connects to the pod's port, relays the data stream both ways, and
reports failures as text on the error stream. Only what that needs is implemented: SYN_STREAM /
SYN_REPLY with zlib-compressed header blocks, DATA with FIN, RST_STREAM, PING, GOAWAY; SETTINGS
and WINDOW_UPDATE are accepted and ignored (the Go client does not enforce flow control).
"""

from __future__ import annotations

import contextlib
import logging
import socket as net
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

WEBSOCKET_PROTOCOL = "SPDY/3.1+portforward.k8s.io"

_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _HEADERS, _WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
_FLAG_FIN = 0x01
_VERSION = 3
_MAX_FRAME = 1 << 24

# The SPDY/3 header compression dictionary (spec section 2.6.10.1): length-prefixed header names
# and values, then a run of common value fragments.
_DICTIONARY_WORDS = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200_OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
]
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(len(word).to_bytes(4, "big") + word.replace("_", " ").encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)


class ByteStream:
    """What SPDY runs over: ``read(n)`` (b"" at the end) and ``write(data)``."""

    def __init__(self, read: Callable[[int], bytes], write: Callable[[bytes], None]) -> None:
        self.read = read
        self.write = write


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1."""


@dataclass
class _Forward:
    """One forwarded connection: kubectl's error and data streams for a request id."""

    port: int
    error_stream: int = 0
    data_stream: int = 0
    connection: net.socket | None = None
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class PortForwardSession:
    """Serves one kubectl port-forward session until the client goes away."""

    def __init__(self, stream: ByteStream, pod_ip: str) -> None:
        self._stream = stream
        self._pod_ip = pod_ip
        self._write_lock = threading.Lock()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._forwards: dict[str, _Forward] = {}
        self._by_stream: dict[int, _Forward] = {}
        self._threads: list[threading.Thread] = []

    # -- framing ---------------------------------------------------------------------------------

    def _read_exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self._stream.read(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _send(self, frame: bytes) -> None:
        with self._write_lock:
            self._stream.write(frame)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> None:
        header = struct.pack("!HHI", 0x8000 | _VERSION, frame_type, (flags << 24) | len(payload))
        self._send(header + payload)

    def _data(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        self._send(
            struct.pack("!II", stream_id & 0x7FFFFFFF, ((_FLAG_FIN if fin else 0) << 24) | len(data)) + data
        )

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack_from("!I", raw, 0)
        position, headers = 4, {}
        for _ in range(count):
            (length,) = struct.unpack_from("!I", raw, position)
            name = raw[position + 4 : position + 4 + length].decode()
            position += 4 + length
            (length,) = struct.unpack_from("!I", raw, position)
            value = raw[position + 4 : position + 4 + length].decode()
            position += 4 + length
            headers[name.lower()] = value.split("\x00")[0]
        return headers

    def _empty_header_block(self) -> bytes:
        return self._deflate.compress(b"\x00\x00\x00\x00") + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    # -- session ---------------------------------------------------------------------------------

    def serve(self) -> None:
        try:
            while True:
                first, second = struct.unpack("!II", self._read_exact(8))
                flags, length = second >> 24, second & 0xFFFFFF
                if length > _MAX_FRAME:
                    raise ProtocolError("frame too large")
                payload = self._read_exact(length)
                if first & 0x80000000:
                    if not self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload):
                        return
                else:
                    self._on_data(first & 0x7FFFFFFF, flags, payload)
        except (EOFError, OSError, ProtocolError, zlib.error, struct.error) as exc:
            log.debug("port-forward session ended: %s", exc)
        finally:
            for forward in list(self._by_stream.values()):
                if forward.connection is not None:
                    with contextlib.suppress(OSError):
                        forward.connection.close()
            for thread in self._threads:
                thread.join(2.0)

    def _on_control(self, version: int, frame_type: int, flags: int, payload: bytes) -> bool:
        if version != _VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported")
        if frame_type == _SYN_STREAM:
            stream_id = struct.unpack_from("!I", payload, 0)[0] & 0x7FFFFFFF
            headers = self._headers(payload[10:])
            self._control(_SYN_REPLY, 0, struct.pack("!I", stream_id) + self._empty_header_block())
            self._on_stream(stream_id, headers)
        elif frame_type == _PING:
            self._control(_PING, 0, payload)
        elif frame_type == _RST_STREAM:
            stream_id = struct.unpack_from("!I", payload, 0)[0] & 0x7FFFFFFF
            forward = self._by_stream.get(stream_id)
            if forward is not None and forward.connection is not None:
                with contextlib.suppress(OSError):
                    forward.connection.close()
        elif frame_type == _GOAWAY:
            return False
        elif frame_type == _HEADERS:
            self._headers(payload[4:])  # keep the shared decompressor in step
        return True

    def _on_stream(self, stream_id: int, headers: dict[str, str]) -> None:
        request = headers.get("requestid", "")
        port_text = headers.get("port", "")
        if not port_text.isdigit():
            self._data(stream_id, f'invalid port "{port_text}"'.encode(), fin=True)
            return
        forward = self._forwards.setdefault(request, _Forward(port=int(port_text)))
        if headers.get("streamtype") == "error":
            forward.error_stream = stream_id
        else:
            forward.data_stream = stream_id
        self._by_stream[stream_id] = forward
        if forward.error_stream and forward.data_stream and not forward.started:
            forward.started = True
            self._start(forward)

    def _start(self, forward: _Forward) -> None:
        try:
            forward.connection = net.create_connection((self._pod_ip, forward.port), timeout=10)
            forward.connection.settimeout(None)
        except OSError as exc:
            message = f"error forwarding port {forward.port} to pod {self._pod_ip}: {exc}"
            self._data(forward.error_stream, message.encode(), fin=True)
            self._data(forward.data_stream, b"", fin=True)
            return
        thread = threading.Thread(target=self._pump, args=(forward,), daemon=True, name="port-forward")
        thread.start()
        self._threads.append(thread)

    def _pump(self, forward: _Forward) -> None:
        assert forward.connection is not None
        try:
            while True:
                data = forward.connection.recv(32 * 1024)
                if not data:
                    break
                self._data(forward.data_stream, data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self._data(forward.data_stream, b"", fin=True)
            self._data(forward.error_stream, b"", fin=True)

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        forward = self._by_stream.get(stream_id)
        if forward is None or forward.connection is None or stream_id != forward.data_stream:
            return
        try:
            if payload:
                forward.connection.sendall(payload)
            if flags & _FLAG_FIN:
                forward.connection.shutdown(net.SHUT_WR)
        except OSError:
            with contextlib.suppress(OSError):
                forward.connection.close()
