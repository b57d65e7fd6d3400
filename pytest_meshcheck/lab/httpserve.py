"""A small threaded HTTP/1.1 server (its message framing is ``httpframing``, shared with the proxies).

The lab's workloads (Bookinfo, httpbin, and the sidecar proxy's listeners) must behave like real
servers to real clients: keep-alive, Content-Length and chunked bodies, HEAD without a body, and a
``stop`` that really frees the port and leaves no thread behind. ``http.server`` cannot close idle
keep-alive connections on shutdown, so the lab carries its own: one accept thread, one thread per
connection, every socket tracked so ``stop`` can shut it down and join its thread.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from pytest_meshcheck.lab.httpframing import (
    Headers,
    ProtocolError,
    encode_head,
    read_body,
    read_request_head,
    reason_phrase,
    status_has_body,
    wants_keep_alive,
)

#: How long ``stop`` waits for one connection thread (a handler may be inside a slow call).
JOIN_TIMEOUT = 10.0
#: How long a TLS client may take over its handshake before the connection is dropped.
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class Request:
    """One parsed request, as a handler sees it."""

    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    #: Set when the server is stopping: handlers that wait (``/delay/N``) wait on this.
    cancelled: threading.Event

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def host(self) -> str:
        return self.headers.get("Host") or f"{self.server_ip}:{self.server_port}"


@dataclass(kw_only=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None


Handler = Callable[[Request], Response]
AccessLog = Callable[[Request, Response], None]


def encode_response(response: Response, *, head_only: bool, keep_alive: bool) -> bytes:
    reason = response.reason or reason_phrase(response.status)
    headers = list(response.headers)
    names = {name.lower() for name, _ in headers}
    has_body = status_has_body(response.status)
    if has_body and "content-length" not in names:
        headers.append(("Content-Length", str(len(response.body))))
    if "date" not in names:
        headers.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
    if not keep_alive:
        headers.append(("Connection", "close"))
    head = encode_head(f"HTTP/1.1 {response.status} {reason}", headers)
    if head_only or not has_body:
        return head
    return head + response.body


_RequestHead = tuple[str, str, str, Headers]


class HttpServer:
    """Serves ``handler`` on ``ip:port`` until ``stop``; every connection on its own thread."""

    def __init__(
        self,
        ip: str,
        port: int,
        handler: Handler,
        *,
        name: str = "http",
        access_log: AccessLog | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ip = ip
        self.port = port
        self._handler = handler
        #: Server-side TLS for every connection (istiod's webhook and CA ports); the handshake runs
        #: on the connection's thread, so a slow client never holds up accepting the next one.
        self._tls = tls
        self._name = name
        self._access_log = access_log
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        #: Connections whose request is inside the handler: stop lets them answer first.
        self._busy: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._draining = threading.Event()
        self._activity = threading.Condition(self._lock)
        self._last_request_at = time.monotonic()

    def start(self) -> None:
        """Bind and listen now (so a port clash fails here, loudly), then accept on a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.ip, self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            self._wake_r.close()
            self._wake_w.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept-{self.ip}:{self.port}", daemon=True
        )
        self._accept_thread.start()

    def drain(self, *, quiet_s: float, timeout: float) -> None:
        """The first half of a graceful shutdown, as a service that handles SIGTERM well: keep
        accepting (clients may not know yet that this endpoint is going), answer with
        ``Connection: close``, and return once no request is being served and none has arrived
        for ``quiet_s``, or after ``timeout``. ``stop`` does the rest."""
        self._draining.set()
        deadline = time.monotonic() + timeout
        with self._activity:
            while True:
                now = time.monotonic()
                quiet_for = now - self._last_request_at
                if now >= deadline or (not self._busy and quiet_for >= quiet_s):
                    return
                wait = deadline - now if self._busy else min(deadline - now, quiet_s - quiet_for)
                self._activity.wait(timeout=max(wait, 0.01))

    def stop(self) -> None:
        """Close the listener and every connection, then join all threads."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(JOIN_TIMEOUT)
        with self._lock:
            connections = list(self._connections.items())
            idle = [conn for conn, _ in connections if conn not in self._busy]
        for conn in idle:
            _shutdown(conn)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for conn, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # a handler that ignored ``cancelled``: cut its connection
                _shutdown(conn)
                thread.join(1.0)
        if self._listener is not None:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, address = self._listener.accept()
                    except OSError:
                        continue
                    self._spawn(conn, address)

    def _spawn(self, conn: socket.socket, address: tuple[str, int]) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(conn, address),
            name=f"{self._name}-conn-{address[0]}:{address[1]}",
            daemon=True,
        )
        with self._lock:
            if self._stopping.is_set():
                conn.close()
                return
            self._connections[conn] = thread
        thread.start()

    def _serve_connection(self, conn: socket.socket, address: tuple[str, int]) -> None:
        if self._tls is not None:
            wrapped = self._handshake(conn)
            if wrapped is None:
                return
            conn = wrapped
        try:
            with conn, conn.makefile("rb") as reader:
                while not self._stopping.is_set():
                    if not self._serve_one(conn, reader, address):
                        break
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.pop(conn, None)

    def _handshake(self, conn: socket.socket) -> socket.socket | None:
        """The TLS side of ``conn``, tracked in its place so ``stop`` can still shut it down;
        ``None`` (and the connection closed) when the client fails the handshake."""
        assert self._tls is not None
        thread = threading.current_thread()
        with self._lock:
            self._connections.pop(conn, None)
            if self._stopping.is_set():
                conn.close()
                return None
            wrapped = self._tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            self._connections[wrapped] = thread
        try:
            wrapped.settimeout(HANDSHAKE_TIMEOUT)
            wrapped.do_handshake()
            wrapped.settimeout(None)
        except (OSError, ValueError):
            with self._lock:
                self._connections.pop(wrapped, None)
            wrapped.close()
            return None
        return wrapped

    def _serve_one(self, conn: socket.socket, reader: BinaryIO, address: tuple[str, int]) -> bool:
        """Serve one request; ``False`` when the connection must close.

        The connection counts as busy from the moment a request head has arrived until its answer
        is sent: ``stop`` shuts down only idle connections at once, and one whose handler has
        returned but whose answer is still being written is not idle (cutting it there lost the
        answer of a request ``stop`` had cancelled)."""
        try:
            head = read_request_head(reader)
        except ProtocolError as error:
            _refuse(conn, error)
            return False
        if head is None:
            return False
        with self._activity:
            self._busy.add(conn)
            self._last_request_at = time.monotonic()
        try:
            return self._answer(conn, reader, address, head)
        finally:
            with self._activity:
                self._busy.discard(conn)
                self._activity.notify_all()

    def _answer(
        self, conn: socket.socket, reader: BinaryIO, address: tuple[str, int], head: _RequestHead
    ) -> bool:
        method, target, version, headers = head
        try:
            if version == "HTTP/1.1" and (headers.get("Expect") or "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = read_body(reader, headers, until_close=False)
        except ProtocolError as error:
            _refuse(conn, error)
            return False
        server_ip, server_port = conn.getsockname()[:2]
        request = Request(
            method=method,
            target=target,
            version=version,
            headers=headers,
            body=body,
            client_ip=address[0],
            client_port=address[1],
            server_ip=server_ip,
            server_port=server_port,
            cancelled=self._stopping,
        )
        try:
            response = self._handler(request)
        except Exception as error:  # a handler bug must answer 500, not kill the connection thread
            response = Response(status=500, body=f"internal error: {type(error).__name__}\n".encode())
        keep_alive = (
            wants_keep_alive(version, headers) and not self._stopping.is_set() and not self._draining.is_set()
        )
        if self._access_log is not None:  # logged before sending, so a client that has its answer sees it
            self._access_log(request, response)
        conn.sendall(encode_response(response, head_only=method == "HEAD", keep_alive=keep_alive))
        return keep_alive


def _refuse(conn: socket.socket, error: ProtocolError) -> None:
    reply = Response(status=error.status, body=f"{error}\n".encode())
    conn.sendall(encode_response(reply, head_only=False, keep_alive=False))


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def common_log_line(request: Request, response: Response) -> str:
    """An access line in the Common Log Format most of the sample apps' servers print."""
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    size = len(response.body) if response.body else "-"
    return (
        f'{request.client_ip} - - [{stamp}] "{request.method} {request.target} {request.version}" '
        f"{response.status} {size}"
    )
