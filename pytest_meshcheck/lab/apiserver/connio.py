"""One TLS connection shared by a reader thread and a writer thread.

An ``ssl.SSLSocket`` must not be read and written concurrently (OpenSSL objects are not
thread-safe), yet exec needs stdin pumped while stdout streams, and watches and log streams need
to notice a client that went away while they wait for data. ``LockedSocket`` serialises every TLS
operation under one lock and only reads when ``select`` says bytes are there, so the reader never
holds the lock while blocked.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time

_POLL_SECONDS = 0.2


class LockedSocket:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._sock.sendall(data)

    def _try_recv(self, size: int) -> bytes | None:
        """Non-blocking read under the lock: bytes, b"" (peer closed) or None (nothing yet)."""
        with self._lock:
            try:
                previous = self._sock.gettimeout()
                self._sock.setblocking(False)
            except OSError:
                return b""
            try:
                return self._sock.recv(size)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
                return b""
            except OSError:
                return b""
            finally:
                with contextlib.suppress(OSError):
                    self._sock.settimeout(previous)

    def recv_some(self, timeout: float | None, size: int = 65536) -> bytes | None:
        """Up to ``size`` bytes; b"" once the peer has closed; None when ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
            if not pending:
                remaining = (
                    _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
                )
                remaining = max(remaining, 0.0)
                try:
                    readable, _, _ = select.select([self._sock], [], [], remaining)
                except (OSError, ValueError):
                    return b""
                if not readable:
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    continue
            data = self._try_recv(size)
            if data is not None:
                return data

    def peer_closed(self) -> bool:
        """True when the client has hung up (any bytes it sent meanwhile are discarded: a
        streaming response expects none)."""
        data = self.recv_some(0)
        return data == b""
