"""Server side of RFC 6455, the part ``pods/exec`` needs: the upgrade handshake, reading masked
client frames (with fragmentation, ping and close) and writing binary frames from many threads."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct

from pytest_meshcheck.lab.apiserver.connio import LockedSocket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Refuse client frames larger than this (exec stdin arrives in small pieces).
MAX_FRAME = 16 * 1024 * 1024


class ConnectionClosed(ConnectionError):
    """The peer closed the connection (or sent a close frame). A ``ConnectionError``, so code that
    relays bytes over any transport (the SPDY port-forward pump) ends quietly on it as on a socket's."""


def accept_key(client_key: str) -> str:
    return base64.b64encode(hashlib.sha1(client_key.encode() + _GUID).digest()).decode()


class WebSocket:
    """A WebSocket over an already-upgraded connection. ``send`` is thread-safe; ``receive``
    must be called from one thread."""

    def __init__(self, sock: LockedSocket) -> None:
        self._sock = sock
        self._buffer = b""
        self.closed = False

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if self.closed:
                raise ConnectionClosed("connection closed")
            chunk = self._sock.recv_some(1.0)
            if chunk is None:
                continue
            if not chunk:
                raise ConnectionClosed("connection closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        masked, length = bool(second & 0x80), second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if length > MAX_FRAME:
            raise ConnectionClosed("frame too large")
        mask = self._read_exact(4) if masked else b""
        payload = self._read_exact(length)
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def receive(self) -> tuple[int, bytes]:
        """The next data message as ``(opcode, payload)``; answers pings; raises
        ``ConnectionClosed`` at the end."""
        message = b""
        message_opcode = None
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_CLOSE:
                self.close()
                raise ConnectionClosed("close frame")
            if opcode == OP_PING:
                self.send(payload, opcode=OP_PONG)
                continue
            if opcode == OP_PONG:
                continue
            if opcode != OP_CONTINUATION:
                message_opcode = opcode
            message += payload
            if fin and message_opcode is not None:
                return message_opcode, message

    def send(self, payload: bytes, *, opcode: int = OP_BINARY) -> None:
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([length])
        elif length < 65536:
            header += bytes([126]) + struct.pack("!H", length)
        else:
            header += bytes([127]) + struct.pack("!Q", length)
        if self.closed and opcode != OP_CLOSE:
            raise ConnectionClosed("already closed")
        try:
            self._sock.sendall(header + payload)
        except OSError as exc:
            self.closed = True
            raise ConnectionClosed(str(exc)) from exc

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        with contextlib.suppress(ConnectionClosed):
            self.send(struct.pack("!H", code) + reason.encode()[:120], opcode=OP_CLOSE)
        self.closed = True
