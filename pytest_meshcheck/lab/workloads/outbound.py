"""HTTP calls from one workload to another, always through the container's dialer.

The dialer is what puts a captured pod's traffic through its sidecar, so a workload that opened
its own sockets would bypass the mesh. Open calls are tracked so that ``abort_all`` (from the
workload's ``stop``) can cut a handler that waits on a slow backend instead of waiting it out.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.lab.contract import Dialer
from pytest_meshcheck.lab.httpframing import (
    Headers,
    encode_head,
    read_body,
    read_response_head,
    response_has_body,
)


class CallFailed(Exception):
    """The backend could not be reached or did not answer with an HTTP response."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class OutboundClient:
    """Plain HTTP/1.1 requests over ``dialer``; one connection per call, closed afterwards."""

    def __init__(self, dialer: Dialer, *, user_agent: str) -> None:
        self._dialer = dialer
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._aborted = False

    def get(
        self, host: str, port: int, path: str, *, headers: list[tuple[str, str]], timeout: float
    ) -> Reply:
        return self.request("GET", host, port, path, headers=headers, timeout=timeout)

    def request(
        self,
        method: str,
        host: str,
        port: int,
        path: str,
        *,
        headers: list[tuple[str, str]],
        timeout: float,
        body: bytes = b"",
    ) -> Reply:
        """Send one request; raises ``CallFailed`` on any network or protocol failure."""
        try:
            conn = self._dialer.connect(host, port, timeout=timeout)
        except (OSError, LookupError) as error:
            raise CallFailed(f"connect {host}:{port}: {error}") from error
        with self._lock:
            if self._aborted:
                conn.close()
                raise CallFailed("workload is stopping")
            self._open.add(conn)
        try:
            conn.settimeout(timeout)
            target = (host if port == 80 else f"{host}:{port}", path)
            conn.sendall(self._encode(method, target, headers, body))
            with conn.makefile("rb") as reader:
                _, status, _, response_headers = read_response_head(reader)
                has_body = response_has_body(method, status)
                payload = read_body(reader, response_headers, until_close=True) if has_body else b""
            return Reply(status, response_headers, payload)
        except Exception as error:  # socket errors, timeouts, malformed responses alike
            raise CallFailed(f"{method} {host}:{port}{path}: {error}") from error
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def abort_all(self) -> None:
        """Cut every call in flight and refuse new ones (the workload is stopping)."""
        with self._lock:
            self._aborted = True
            pending = list(self._open)
        for conn in pending:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _encode(
        self, method: str, target: tuple[str, str], headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        """``target`` is (Host header value, request path)."""
        authority, path = target
        outgoing = Headers(headers)
        if "Host" not in outgoing:
            outgoing.set("Host", authority)
        if "User-Agent" not in outgoing:
            outgoing.add("User-Agent", self._user_agent)
        outgoing.set("Accept", outgoing.get("Accept") or "*/*")
        outgoing.set("Connection", "close")
        if body or method in ("POST", "PUT", "PATCH"):
            outgoing.set("Content-Length", str(len(body)))
        return encode_head(f"{method} {path} HTTP/1.1", outgoing) + body
