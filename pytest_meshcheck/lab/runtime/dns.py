"""Cluster DNS for the lab's workloads (the contract's ``Resolver``).

Names are answered the way CoreDNS with the default ``search <ns>.svc.cluster.local
svc.cluster.local cluster.local`` path answers them: ``svc``, ``svc.ns``, ``svc.ns.svc`` and
``svc.ns.svc.cluster.local`` name a Service; a headless Service answers with its ready pods'
IPs; ``host.svc.ns.svc.cluster.local`` names a pod behind a headless Service by its hostname.
The table is fed by the service and endpoints controllers.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class ServiceRecord:
    """What DNS knows of one Service."""

    cluster_ip: str = ""
    #: ExternalName services answer with their target's address.
    external_name: str = ""
    #: Ready pod IPs (answers for headless services).
    ready_ips: tuple[str, ...] = ()
    #: Pod hostname -> IP, for ``hostname.svc.ns.svc.cluster.local``.
    hostnames: Mapping[str, str] = field(default_factory=dict)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class ClusterDNS:
    """The lab's name table; ``resolve`` implements ``contract.Resolver``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[tuple[str, str], ServiceRecord] = {}
        self._rotation = itertools.count()

    def set_service(self, namespace: str, name: str, record: ServiceRecord) -> None:
        with self._lock:
            self._services[(namespace, name)] = record

    def remove_service(self, namespace: str, name: str) -> None:
        with self._lock:
            self._services.pop((namespace, name), None)

    def _record(self, namespace: str, name: str) -> ServiceRecord | None:
        with self._lock:
            return self._services.get((namespace, name))

    def _answer(self, record: ServiceRecord, depth: int) -> str:
        if record.external_name:
            if depth > 4:
                raise LookupError(f"ExternalName loop at {record.external_name}")
            return self._resolve(record.external_name, "default", depth + 1)
        if record.cluster_ip:
            return record.cluster_ip
        if record.ready_ips:
            return record.ready_ips[next(self._rotation) % len(record.ready_ips)]
        raise LookupError("headless service has no ready endpoints")

    def resolve(self, host: str, namespace: str) -> str:
        return self._resolve(host, namespace, 0)

    def _resolve(self, host: str, namespace: str, depth: int) -> str:
        name = host.strip().rstrip(".").lower()
        if _is_ip(name):
            return name
        if not name:
            raise LookupError("empty host name")
        for candidate in self._candidates(name, namespace):
            answer = self._lookup(candidate, depth)
            if answer:
                return answer
        raise LookupError(f"{host}: no such host")

    @staticmethod
    def _candidates(name: str, namespace: str) -> Sequence[str]:
        """The fully qualified names the resolver's search path tries, in order."""
        suffix = f".svc.{CLUSTER_DOMAIN}"
        if name.endswith(f".{CLUSTER_DOMAIN}"):
            return [name]
        return [f"{name}.{namespace}{suffix}", f"{name}{suffix}", f"{name}.{CLUSTER_DOMAIN}"]

    def _lookup(self, fqdn: str, depth: int) -> str:
        suffix = f".svc.{CLUSTER_DOMAIN}"
        if not fqdn.endswith(suffix):
            return ""
        labels = fqdn[: -len(suffix)].split(".")
        if len(labels) == 2:
            record = self._record(labels[1], labels[0])
            if record is None:
                return ""
            return self._answer(record, depth)
        if len(labels) == 3:
            record = self._record(labels[2], labels[1])
            if record is None:
                return ""
            return record.hostnames.get(labels[0], "")
        return ""


class ContainerResolver:
    """A container's view of DNS: ``localhost`` is its pod's own address, the rest is cluster DNS."""

    def __init__(self, cluster: ClusterDNS, *, localhost_ip: str, hostname: str, pod_ip: str) -> None:
        self._cluster = cluster
        self._localhost_ip = localhost_ip
        self._hostname = hostname.lower()
        self._pod_ip = pod_ip

    def resolve(self, host: str, namespace: str) -> str:
        name = host.strip().rstrip(".").lower()
        if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
            return self._localhost_ip
        if name == self._hostname:
            return self._pod_ip
        return self._cluster.resolve(name, namespace)
