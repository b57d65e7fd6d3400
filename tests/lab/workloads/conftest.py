"""A tiny pod network for running workloads without the lab's runtime.

Each started workload gets its own 127.x.y.z address (a random /16 per session, so parallel runs
and other tests on loopback do not collide); the fake resolver maps service names to those
addresses the way cluster DNS would, and the fake dialer connects directly, like a pod without a
sidecar.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_meshcheck.lab.contract import Workload, WorkloadContext, WorkloadFactory

_SESSION_NET = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}"
_SUFFIXES = (".svc.cluster.local", ".svc")


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


class FakeResolver:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def resolve(self, host: str, namespace: str) -> str:
        try:
            ipaddress.IPv4Address(host)
            return host
        except ValueError:
            pass
        name = host
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        service, _, ns = name.partition(".")
        if ns and ns != namespace:
            raise LookupError(host)
        try:
            return self.names[service]
        except KeyError:
            raise LookupError(host) from None


class FakeDialer:
    def __init__(self, resolver: FakeResolver, namespace: str, source_ip: str) -> None:
        self.resolver = resolver
        self.namespace = namespace
        self.source_ip = source_ip
        self.dialled: list[tuple[str, int]] = []

    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
        ip = self.resolver.resolve(host, self.namespace)
        self.dialled.append((host, port))
        return socket.create_connection((ip, port), timeout=timeout, source_address=(self.source_ip, 0))


@dataclass
class PodNet:
    """Starts workloads on fresh addresses; stops them all at teardown."""

    resolver: FakeResolver = field(default_factory=FakeResolver)
    namespace: str = "default"
    running: list[Workload] = field(default_factory=list)
    logs: dict[str, MemoryLog] = field(default_factory=dict)
    _next: int = 10

    def address(self) -> str:
        self._next += 1
        return f"{_SESSION_NET}.{self._next}"

    def context(
        self,
        *,
        name: str,
        image: str,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        ip: str | None = None,
    ) -> WorkloadContext:
        pod_ip = ip or self.address()
        log = MemoryLog()
        self.logs[name] = log
        pod_name = f"{name}-7d4b9c5f6-x2x9q"
        return WorkloadContext(
            namespace=self.namespace,
            pod_name=pod_name,
            pod_uid=str(uuid.uuid4()),
            container_name=name.split("-", maxsplit=1)[0],
            image=image,
            image_tag=image.rpartition(":")[2] if ":" in image else "",
            pod_ip=pod_ip,
            local_ip=pod_ip,
            bind_ip=pod_ip,
            hostname=pod_name,
            service_account="default",
            node_name="lab-node-1",
            env=dict(env or {}),
            args=args,
            command=(),
            ports=(),
            labels={"app": name.split("-", maxsplit=1)[0]},
            annotations={},
            dialer=FakeDialer(self.resolver, self.namespace, pod_ip),
            resolver=self.resolver,
            log=log,
            stopping=threading.Event(),
        )

    def start(
        self,
        factory: WorkloadFactory,
        *,
        name: str,
        image: str,
        service: str | None = None,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> tuple[Workload, WorkloadContext]:
        ctx = self.context(name=name, image=image, env=env, args=args)
        workload = factory(ctx)
        workload.start()
        self.running.append(workload)
        if service is not None:
            self.resolver.names[service] = ctx.pod_ip
        return workload, ctx

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()


@pytest.fixture
def podnet() -> Iterator[PodNet]:
    net = PodNet()
    try:
        yield net
    finally:
        net.stop_all()


@pytest.fixture
def make_context(podnet: PodNet) -> Callable[..., WorkloadContext]:
    def build(**kwargs: Any) -> WorkloadContext:
        kwargs.setdefault("name", "curl")
        kwargs.setdefault("image", "curlimages/curl:8.16.0")
        return podnet.context(**kwargs)

    return build
