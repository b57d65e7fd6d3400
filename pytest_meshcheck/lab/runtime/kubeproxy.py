"""The lab's kube-proxy: makes ClusterIPs, node ports and LoadBalancer addresses answer.

On a real node iptables rewrites a packet to a ClusterIP into one to a ready endpoint. Here each
frontend (ClusterIP:port, nodeIP:nodePort, LB-ingress-IP:port) is a listening socket whose accepted
connections are spliced to the next ready endpoint in round-robin order. A frontend without ready
endpoints resets the connection, the way kube-proxy's REJECT rule refuses it.

Frontends are declared per service as a whole (``sync``), and the proxy diffs against what it
listens on, so controllers never have to track individual listeners.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pytest_meshcheck.lab.runtime.forwarding import reset, splice

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True)
class Frontend:
    """Where a service port is exposed, and which of its ports (by name) it serves."""

    ip: str
    port: int
    port_name: str


class _Backends:
    """The ready endpoints of one service port, rotated per connection."""

    def __init__(self, targets: Sequence[Address]) -> None:
        self.targets = tuple(targets)
        self._cycle: Iterator[Address] = itertools.cycle(self.targets)
        self._lock = threading.Lock()

    def next(self) -> Address | None:
        if not self.targets:
            return None
        with self._lock:
            return next(self._cycle)


class _Listener:
    def __init__(self, sock: socket.socket, proxy: KubeProxy, key: str, port_name: str) -> None:
        self.sock = sock
        self.key = key
        self.port_name = port_name
        self._proxy = proxy
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name=f"kube-proxy {key}")

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            target = self._proxy.pick(self.key, self.port_name)
            if target is None:
                reset(client)
                continue
            threading.Thread(target=self._connect, args=(client, target), daemon=True).start()

    def _connect(self, client: socket.socket, target: Address) -> None:
        try:
            upstream = socket.create_connection(target, timeout=5.0)
        except OSError:
            reset(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        splice(client, upstream)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.thread.join(timeout=5.0)


def can_listen(ip: str, port: int) -> bool:
    """Whether this process could bind ip:port now (privileged ports need root or a capability)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((ip, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class KubeProxy:
    """All service frontends of one lab."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[Address, _Listener] = {}
        self._backends: dict[tuple[str, str], _Backends] = {}
        self._frontends: dict[str, set[Frontend]] = {}

    def sync(
        self,
        key: str,
        frontends: Sequence[Frontend],
        backends: Mapping[str, Sequence[Address]],
    ) -> list[Frontend]:
        """Make service ``key`` (ns/name) exposed exactly on ``frontends`` with ``backends`` per port
        name. Returns the frontends that could not be bound (the caller reports them)."""
        failed: list[Frontend] = []
        wanted = set(frontends)
        with self._lock:
            for name in {name for svc, name in self._backends if svc == key} - set(backends):
                del self._backends[(key, name)]
            for name, targets in backends.items():
                current = self._backends.get((key, name))
                if current is None or current.targets != tuple(targets):
                    self._backends[(key, name)] = _Backends(targets)
            previous = self._frontends.get(key, set())
            to_close = [
                self._listeners.pop((f.ip, f.port))
                for f in previous - wanted
                if (f.ip, f.port) in self._listeners
            ]
            bound: set[Frontend] = set(previous & wanted)
            for frontend in wanted - previous:
                listener = self._bind(key, frontend)
                if listener is None:
                    failed.append(frontend)
                    continue
                self._listeners[(frontend.ip, frontend.port)] = listener
                bound.add(frontend)
            if bound:
                self._frontends[key] = bound
            else:
                self._frontends.pop(key, None)
        for listener in to_close:
            listener.close()
        return failed

    def _bind(self, key: str, frontend: Frontend) -> _Listener | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((frontend.ip, frontend.port))
            sock.listen(128)
        except OSError as exc:
            log.warning("kube-proxy cannot listen on %s:%s for %s: %s", frontend.ip, frontend.port, key, exc)
            sock.close()
            return None
        listener = _Listener(sock, self, key, frontend.port_name)
        listener.thread.start()
        return listener

    def remove(self, key: str) -> None:
        self.sync(key, [], {})

    def pick(self, key: str, port_name: str) -> Address | None:
        with self._lock:
            backends = self._backends.get((key, port_name))
        return backends.next() if backends is not None else None

    def listening(self) -> list[Address]:
        with self._lock:
            return sorted(self._listeners)

    def stop(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
            self._frontends.clear()
            self._backends.clear()
        for listener in listeners:
            listener.close()
