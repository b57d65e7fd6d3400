"""Socket plumbing the proxies share: listeners, resets, relays, the PROXY protocol line."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import struct
import threading
from collections.abc import Callable

#: Envoy's default idle timeout for connections (1 h): an idle connection, or an upstream that
#: never answers, is closed then rather than holding a thread forever.
IDLE_TIMEOUT = 3600.0


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0): what Envoy does to a plaintext client on a
    STRICT port, and what curl reports as ``Recv failure: Connection reset by peer`` (exit 56)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def shutdown_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def parse_proxy_v1(line: bytes) -> tuple[str, int, str, int]:
    """``PROXY TCP4 <src> <dst> <sport> <dport>`` -> (src, sport, dst, dport)."""
    parts = line.decode("ascii", "replace").split(" ")
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ValueError(f"not a PROXY v1 line: {line[:100]!r}")
    return parts[2], int(parts[4]), parts[3], int(parts[5])


class Listener:
    """A TCP listener that hands each accepted connection to ``handle`` on its own thread."""

    def __init__(
        self,
        address: tuple[str, int],
        handle: Callable[[socket.socket, tuple[str, int]], None],
        *,
        name: str,
    ) -> None:
        self.address = address
        self._handle = handle
        self._name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(address)
        self._sock.listen(128)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"listener-{name}", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            if self._closed.is_set():
                reset(conn)
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=self._handle, args=(conn, peer), name=f"conn-{self._name}", daemon=True
            ).start()

    def close(self) -> None:
        """Stop accepting: new connections are refused from now on."""
        self._closed.set()
        shutdown_quietly(self._sock)
        self._thread.join(timeout=5)


def _half_close(sock: socket.socket) -> None:
    if isinstance(sock, ssl.SSLSocket):
        return  # a TLS stream ends with close_notify at close time; no half-close on TLS
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def relay(
    a: socket.socket, b: socket.socket, first_to_b: bytes = b"", *, idle_timeout: float = IDLE_TIMEOUT
) -> tuple[int, int]:
    """Copy bytes both ways until both directions closed: ``(bytes a->b, bytes b->a)``.

    One thread and a selector, so a TLS socket is never read and written from two threads at once
    (OpenSSL connections are not thread-safe)."""
    counts = {id(a): len(first_to_b), id(b): 0}
    if first_to_b:
        b.sendall(first_to_b)
    peers = {id(a): b, id(b): a}
    open_ends = {a, b}
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_READ)
        while open_ends:
            ready = [key.fileobj for key, _ in selector.select(timeout=idle_timeout)]
            ready += [s for s in open_ends if isinstance(s, ssl.SSLSocket) and s.pending() and s not in ready]
            if not ready:
                break
            for src in ready:
                assert isinstance(src, socket.socket)
                try:
                    data = src.recv(65536)
                except (OSError, ssl.SSLError):
                    data = b""
                dst = peers[id(src)]
                if data:
                    try:
                        dst.sendall(data)
                    except OSError:
                        return counts[id(a)], counts[id(b)]
                    counts[id(src)] += len(data)
                    continue
                if src in open_ends:
                    open_ends.discard(src)
                    selector.unregister(src)
                    _half_close(dst)
                    if isinstance(dst, ssl.SSLSocket) or isinstance(src, ssl.SSLSocket):
                        open_ends.clear()
    return counts[id(a)], counts[id(b)]
