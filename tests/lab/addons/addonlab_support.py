"""Test support for the addon workloads: contexts, a real lab Store holding the rendered addon
manifests, and tiny metrics servers standing in for sidecars' ``:15020/stats/prometheus``."""

from __future__ import annotations

import contextlib
import random
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.errors import AlreadyExists
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.resources import GVR
from pytest_meshcheck.lab.store import Store

ROOT = Path(__file__).resolve().parents[3]
ADDONS = ROOT / "fixtures" / "addons"
PROMETHEUS_IMAGE = "prom/prometheus:v3.4.2"
KIALI_IMAGE = "quay.io/kiali/kiali:v2.8.0"
NAMESPACES = GVR.core("namespaces")
PODS = GVR.core("pods")
CONFIGMAPS = GVR.core("configmaps")
#: A /16 of loopback per test session, so parallel runs do not collide.
SESSION_NET = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}"
_next_host = iter(range(10, 250))


def address() -> str:
    return f"{SESSION_NET}.{next(_next_host)}"


def render(name: str, **values: str) -> list[dict[str, Any]]:
    text = string.Template((ADDONS / name).read_text()).substitute(values)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def rendered(name: str, kind: str, **values: str) -> dict[str, Any]:
    return next(doc for doc in render(name, **values) if doc["kind"] == kind)


def ensure_namespace(store: Store, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        store.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


class MemoryLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines: list[tuple[str, str]] = []

    def write(self, line: str, *, stream: str = "stdout") -> None:
        with self._lock:
            self.lines.append((stream, line))

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


class DirectDialer:
    """A pod without a sidecar: resolves through the resolver and connects directly."""

    def __init__(self, resolver: StaticResolver, source_ip: str) -> None:
        self.resolver = resolver
        self.source_ip = source_ip

    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
        ip = self.resolver.resolve(host, "istio-system")
        return socket.create_connection((ip, port), timeout=timeout, source_address=(self.source_ip, 0))


class StaticResolver:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def resolve(self, host: str, namespace: str) -> str:
        if host in self.names:
            return self.names[host]
        if all(part.isdigit() for part in host.split(".")):
            return host
        raise LookupError(host)


def pod_context(
    pod: Mapping[str, Any],
    *,
    container: str,
    ip: str,
    services: Mapping[str, Any],
    resolver: StaticResolver | None = None,
) -> WorkloadContext:
    spec = pod["spec"]
    entry = next(c for c in spec["containers"] if c["name"] == container)
    meta = pod["metadata"]
    resolver = resolver or StaticResolver()
    return WorkloadContext(
        namespace=meta["namespace"],
        pod_name=meta["name"],
        pod_uid=meta.get("uid", str(uuid.uuid4())),
        container_name=container,
        image=entry["image"],
        image_tag=entry["image"].rpartition(":")[2],
        pod_ip=ip,
        local_ip=ip,
        bind_ip=ip,
        hostname=meta["name"],
        service_account=spec.get("serviceAccountName", "default"),
        node_name="lab-control-plane",
        env={},
        args=tuple(entry.get("args") or ()),
        command=tuple(entry.get("command") or ()),
        ports=tuple(p["containerPort"] for p in entry.get("ports") or ()),
        labels=meta.get("labels") or {},
        annotations=meta.get("annotations") or {},
        dialer=DirectDialer(resolver, ip),
        resolver=resolver,
        log=MemoryLog(),
        stopping=threading.Event(),
        pod=pod,
        services=services,
    )


def pod_from_template(deployment: Mapping[str, Any], name: str, ip: str) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "uid": str(uuid.uuid4()),
            "labels": dict(template["metadata"]["labels"]),
        },
        "spec": {**template["spec"], "nodeName": "lab-control-plane"},
        "status": {"phase": "Running", "podIP": ip},
    }


def app_pod(
    name: str, namespace: str, ip: str, labels: Mapping[str, str], *, phase: str = "Running"
) -> dict[str, Any]:
    """A pod as sidecar injection leaves it: app + istio-proxy, prometheus.io annotations."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "15020",
                "prometheus.io/path": "/stats/prometheus",
            },
        },
        "spec": {
            "nodeName": "lab-control-plane",
            "containers": [
                {"name": "app", "image": "example/app:1", "ports": [{"containerPort": 9080}]},
                {
                    "name": "istio-proxy",
                    "image": "istio/proxyv2:1.27.1",
                    "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
                },
            ],
        },
        "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


class MetricsServer:
    """Serves a mutable exposition text at ``/stats/prometheus`` on ``ip:15020``."""

    def __init__(self, ip: str, text: Callable[[], str]) -> None:
        self.text = text
        self.scrapes = 0
        self._server = HttpServer(ip, 15020, self._handle, name="metrics")

    def _handle(self, request: Request) -> Response:
        if request.path != "/stats/prometheus":
            return Response(status=404)
        self.scrapes += 1
        return Response(headers=[("Content-Type", "text/plain; version=0.0.4")], body=self.text().encode())

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def poll(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """The condition's first truthy value; fails with ``what`` and the last error after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # keep polling: the server may not be up yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")
        time.sleep(interval)
