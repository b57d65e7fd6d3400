"""In-memory stand-ins for what the lab hands mesh workloads: store, DNS, logs, pods on loopback."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadContext

KIND_TO_RESOURCE = {
    "Pod": "pods",
    "Service": "services",
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "Gateway": "gateways",
    "PeerAuthentication": "peerauthentications",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
}
CLUSTER_SCOPED = {"namespaces", "mutatingwebhookconfigurations"}


class StoreFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Event:
    type: str
    object: dict[str, Any]


class FakeWatch:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[Event] = []
        self.closed = False

    def push(self, event: Event) -> None:
        with self._cond:
            self._queue.append(event)
            self._cond.notify_all()

    def next(self, timeout: float) -> Event | None:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self.closed, timeout=timeout)
            return self._queue.pop(0) if self._queue else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class FakeStore:
    """Enough of the lab store for istiod: list, get, create, update and an all-kinds watch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._watches: list[FakeWatch] = []
        self._rv = itertools.count(1)

    def _key(self, obj: dict[str, Any]) -> tuple[str, tuple[str, str]]:
        resource = KIND_TO_RESOURCE[obj["kind"]]
        meta = obj["metadata"]
        ns = "" if resource in CLUSTER_SCOPED else meta.get("namespace", "default")
        return resource, (ns, meta["name"])

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        for watch in list(self._watches):
            watch.push(Event(kind, copy.deepcopy(obj)))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource, key = self._key(obj)
        with self._lock:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            existed = key in self._objects.setdefault(resource, {})
            self._objects[resource][key] = obj
            self._emit("MODIFIED" if existed else "ADDED", obj)
        return obj

    def remove(self, obj: dict[str, Any]) -> None:
        resource, key = self._key(obj)
        with self._lock:
            gone = self._objects.get(resource, {}).pop(key, None)
            if gone is not None:
                self._emit("DELETED", gone)

    def list(
        self, gvr: Any, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self._objects.get(gvr.resource, {}).items())
                if not namespace or ns == namespace
            ]
            return items, "1"

    def get(self, gvr: Any, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            found = self._objects.get(gvr.resource, {}).get((namespace or "", name))
            if found is None:
                raise StoreFailure(404, f'{gvr.resource} "{name}" not found')
            return copy.deepcopy(found)

    def create(self, gvr: Any, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        resource, key = self._key(obj)
        with self._lock:
            if key in self._objects.get(resource, {}):
                raise StoreFailure(409, "already exists")
        return self.put(obj)

    def update(self, gvr: Any, obj: dict[str, Any]) -> dict[str, Any]:
        return self.put(obj)

    def watch(
        self, gvr: Any, namespace: str | None = None, *, resource_version: str | None = None
    ) -> FakeWatch:
        watch = FakeWatch()
        with self._lock:
            self._watches.append(watch)
        return watch


class FakeResolver:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def resolve(self, host: str, namespace: str) -> str:
        if host in self.names:
            return self.names[host]
        if host.replace(".", "").isdigit():
            return host
        raise LookupError(host)


class ListLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str, *, stream: str = "stdout") -> None:
        self.lines.append(line)


class NoDialer:
    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
        raise AssertionError("mesh workloads dial directly")


class Addresses:
    """Loopback addresses below the lab's own blocks (127.2-127.19), random per test run."""

    def __init__(self) -> None:
        self.block = random.randint(2, 19)
        self._next = itertools.count(random.randint(1, 200) * 250)

    def take(self) -> tuple[str, str]:
        index = next(self._next)
        third, fourth = divmod(index, 250)
        third %= 99
        return f"127.{self.block}.{third + 1}.{fourth + 1}", f"127.{self.block}.{third + 101}.{fourth + 1}"


def context(
    *,
    pod: dict[str, Any],
    container: str,
    image: str,
    ip: str,
    local: str,
    resolver: FakeResolver,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    services: dict[str, Any] | None = None,
) -> WorkloadContext:
    meta = pod["metadata"]
    return WorkloadContext(
        namespace=meta["namespace"],
        pod_name=meta["name"],
        pod_uid=meta["name"] + "-uid",
        container_name=container,
        image=image,
        image_tag=image.rsplit(":", 1)[1] if ":" in image else "",
        pod_ip=ip,
        local_ip=local,
        bind_ip=ip,
        hostname=meta["name"],
        service_account=pod["spec"].get("serviceAccountName", "default"),
        node_name="lab-node",
        env=env or {},
        args=args,
        command=(),
        ports=(),
        labels=meta.get("labels", {}),
        annotations=meta.get("annotations", {}),
        dialer=NoDialer(),
        resolver=resolver,
        log=ListLog(),
        stopping=threading.Event(),
        pod=pod,
        services=services or {},
    )


def serve_http(address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A scripted app container on ``address``, served on a daemon thread until ``stop_http``."""
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def stop_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class EchoApp:
    """An app container: answers every request with JSON of what it received."""

    def __init__(self, address: tuple[str, int], *, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Semaphore(0)
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                app.entered.release()
                app.release.wait(timeout=10)
                seen = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
                app.requests.append(seen)
                body = json.dumps(seen).encode()
                self.send_response(app.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = serve_http(address, Handler)

    def close(self) -> None:
        stop_http(self.server)


def iter_metric_lines(text: str, name: str) -> Iterator[dict[str, str]]:
    """Label sets of the samples of one metric in Prometheus text format (value under ``__value__``)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_text, _, value = line[len(name) + 1 :].rpartition("} ")
        labels: dict[str, str] = {}
        for part in _split_labels(labels_text):
            key, _, raw = part.partition("=")
            labels[key] = raw.strip('"')
        labels["__value__"] = value
        yield labels


def _split_labels(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


class TcpEchoApp:
    """A non-HTTP app: echoes bytes back upper-cased until the client closes."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data.upper())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
