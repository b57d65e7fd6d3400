"""A small mesh on loopback for end-to-end tests: istiod, sidecars, apps, a gateway."""

from __future__ import annotations

import datetime
import itertools
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from meshlab_fakes import Addresses, EchoApp, FakeResolver, FakeStore, context
from meshlab_objects import pod, service

from pytest_meshcheck.lab.httpframing import Headers
from pytest_meshcheck.lab.mesh.httpio import Connection, Request, Response, read_response
from pytest_meshcheck.lab.mesh.istiod import Istiod
from pytest_meshcheck.lab.mesh.proxy import ProxyAgent
from pytest_meshcheck.lab.mesh.sources import StaticFaults

VERSION = "1.24.2"
WAIT = 10.0


@dataclass
class PodHandle:
    name: str
    namespace: str
    ip: str
    local: str
    obj: dict[str, Any]
    agent: ProxyAgent | None = None
    apps: list[EchoApp] = field(default_factory=list)

    @property
    def proxy(self) -> ProxyAgent:
        assert self.agent is not None
        return self.agent

    @property
    def app(self) -> EchoApp:
        return self.apps[0]


class MeshLab:
    def __init__(self, *, workload_ttl: datetime.timedelta | None = None) -> None:
        self.addresses = Addresses()
        self.store = FakeStore()
        self.resolver = FakeResolver()
        self.faults = StaticFaults()
        self.pods: list[PodHandle] = []
        self._service_ips = itertools.count(1)
        for ns, labels in (("istio-system", {}), ("apps", {"istio-injection": "enabled"})):
            self.store.put(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
            )
        ip, _ = self.addresses.take()
        istiod_pod = pod(
            "istiod-abc",
            "istio-system",
            ip,
            {"app": "istiod", "istio": "pilot"},
            ports=(15010, 15012, 15014, 15017, 8080),
            service_account="istiod",
            sidecar=False,
        )
        self.store.put(istiod_pod)
        self.resolver.names["istiod.istio-system.svc"] = ip
        self.istiod_ctx = context(
            pod=istiod_pod,
            container="discovery",
            image=f"docker.io/istio/pilot:{VERSION}",
            ip=ip,
            local=ip,
            resolver=self.resolver,
            services={"faults": self.faults},
        )
        self.istiod = Istiod(self.istiod_ctx, store=self.store, workload_ttl=workload_ttl)
        self.istiod.start()

    def service(
        self,
        name: str,
        namespace: str,
        selector: dict[str, str],
        ports: tuple[tuple[str, int, int | str], ...] = (("http", 8000, 8000),),
    ) -> str:
        ip = f"127.{self.addresses.block}.200.{next(self._service_ips)}"
        self.store.put(service(name, namespace, ip, selector, ports=ports))
        return ip

    def add_pod(
        self,
        name: str,
        labels: dict[str, str],
        *,
        namespace: str = "apps",
        ports: tuple[int, ...] = (8000,),
        service_account: str | None = None,
        sidecar: bool = True,
        router: bool = False,
        status: int = 200,
        http_apps: bool = True,
    ) -> PodHandle:
        ip, local = self.addresses.take()
        obj = pod(
            name,
            namespace,
            ip,
            labels,
            ports=ports,
            service_account=service_account or labels["app"],
            sidecar=sidecar,
            workload=name.rsplit("-", 1)[0],
        )
        self.store.put(obj)
        handle = PodHandle(name, namespace, ip, local, obj)
        if not router and http_apps:
            for port in ports:
                handle.apps.append(EchoApp((local if sidecar else ip, port), status=status))
        if sidecar or router:
            ctx = context(
                pod=obj,
                container="istio-proxy",
                image=f"docker.io/istio/proxyv2:{VERSION}",
                ip=ip,
                local=local,
                resolver=self.resolver,
                args=("proxy", "router" if router else "sidecar"),
                env={"CA_ADDR": "istiod.istio-system.svc:15012"},
                services={"faults": self.faults},
            )
            handle.agent = ProxyAgent(ctx, config_wait=2.0, drain_seconds=5.0)
            handle.agent.start()
            assert handle.agent.wait_ready(WAIT), f"{name} not ready"
        self.pods.append(handle)
        return handle

    def apply(self, obj: dict[str, Any]) -> None:
        """Store an object and wait until every proxy runs with it."""
        before = self.istiod.generation
        self.store.put(obj)
        self.sync(before)

    def delete(self, obj: dict[str, Any]) -> None:
        before = self.istiod.generation
        self.store.remove(obj)
        self.sync(before)

    def sync(self, before: int) -> None:
        generation = self.istiod.wait_for_generation(before, WAIT)
        assert generation > before, "istiod saw no change"
        for handle in self.pods:
            if handle.agent is not None:
                assert handle.agent.wait_for_config(generation, WAIT), f"{handle.name} did not sync"

    def close(self) -> None:
        stoppers = [threading.Thread(target=h.agent.stop) for h in self.pods if h.agent is not None]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=WAIT)
        closers = [threading.Thread(target=app.close) for handle in self.pods for app in handle.apps]
        closers.append(threading.Thread(target=self.istiod.stop))
        for thread in closers:
            thread.start()
        for thread in closers:
            thread.join(timeout=WAIT)


def http_exchange(
    sock: socket.socket, path: str, host: str, headers: dict[str, str] | None = None, prelude: bytes = b""
) -> Response:
    conn = Connection(sock)
    request = Request(method="GET", target=path, headers=Headers([("Host", host), *(headers or {}).items()]))
    conn.send(prelude + request.encode())
    return read_response(conn, "GET")


def mesh_get(
    client: PodHandle,
    dst_ip: str,
    port: int,
    path: str = "/headers",
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A request from ``client``'s app, captured by its sidecar (the lab's capture dialer)."""
    sock = socket.create_connection((client.ip, 15001), timeout=WAIT)
    try:
        prelude = f"PROXY TCP4 {client.local} {dst_ip} 40000 {port}\r\n".encode()
        return http_exchange(sock, path, host or f"{dst_ip}:{port}", headers, prelude)
    finally:
        sock.close()


def plain_get(ip: str, port: int, path: str = "/headers", host: str = "x") -> Response:
    """A request from outside the mesh, straight to a pod."""
    sock = socket.create_connection((ip, port), timeout=WAIT)
    try:
        return http_exchange(sock, path, host)
    finally:
        sock.close()
