"""ClusterIP and NodePort allocation, done at admission like the real API server does it, so a
Service comes back from ``create`` with ``spec.clusterIP`` and its node ports already set.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from pytest_meshcheck.lab.errors import Invalid
from pytest_meshcheck.lab.runtime.addresses import AddressPlan
from pytest_meshcheck.lab.store import AdmissionRequest

NODE_PORT_FIRST, NODE_PORT_LAST = 30000, 32767


class NodePorts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[int] = set()

    def take(self, wanted: int | None = None) -> int:
        with self._lock:
            if wanted:
                if not NODE_PORT_FIRST <= wanted <= NODE_PORT_LAST:
                    raise ValueError(
                        f"provided port is not in the valid range. The range of valid ports is "
                        f"{NODE_PORT_FIRST}-{NODE_PORT_LAST}"
                    )
                if wanted in self._used:
                    raise ValueError("provided port is already allocated")
                self._used.add(wanted)
                return wanted
            free = NODE_PORT_LAST - NODE_PORT_FIRST + 1 - len(self._used)
            if free <= 0:
                raise ValueError("range is full")
            while True:
                port = NODE_PORT_FIRST + secrets.randbelow(NODE_PORT_LAST - NODE_PORT_FIRST + 1)
                if port not in self._used:
                    self._used.add(port)
                    return port

    def release(self, port: int) -> None:
        with self._lock:
            self._used.discard(port)


class ServiceAllocator:
    """The admission plugin that fills ``clusterIP(s)``, ``ipFamilies`` and ``nodePort``."""

    def __init__(self, addresses: AddressPlan) -> None:
        self.addresses = addresses
        self.node_ports = NodePorts()

    def mutate(self, request: AdmissionRequest) -> dict[str, Any] | None:
        if request.kind.storage_key != ("", "services") or request.object is None:
            return None
        if request.operation not in ("CREATE", "UPDATE") or request.subresource:
            return None
        obj = request.object
        spec = obj.setdefault("spec", {})
        old_spec = (request.old_object or {}).get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind == "ExternalName":
            return obj
        if request.operation == "UPDATE" and not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        name = obj.get("metadata", {}).get("name", "")
        wanted_ip = str(spec.get("clusterIP") or "")
        if not wanted_ip:
            if request.dry_run:
                spec["clusterIP"] = "127.255.255.254"
            else:
                spec["clusterIP"] = self.addresses.cluster_ip()
        elif (
            wanted_ip != "None"
            and request.operation == "CREATE"
            and not request.dry_run
            and not self.addresses.reserve_cluster_ip(wanted_ip)
        ):
            raise Invalid(
                f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: ["{wanted_ip}"]: failed to '
                f"allocate IP {wanted_ip}: provided IP is not in the valid range or already allocated. "
                f"The range of valid IPs is {self.addresses.service_cidr}",
                kind="Service",
                name=name,
            )
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or []
            }
            for port in spec.get("ports") or []:
                if port.get("nodePort"):
                    if old_ports.get((port.get("port"), port.get("protocol", "TCP"))) == port["nodePort"]:
                        continue
                    try:
                        self.node_ports.take(int(port["nodePort"]))
                    except ValueError as exc:
                        raise Invalid(
                            f'Service "{name}" is invalid: spec.ports[].nodePort: Invalid value: '
                            f"{port['nodePort']}: {exc}",
                            kind="Service",
                            name=name,
                        ) from exc
                    continue
                previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                port["nodePort"] = previous or self.node_ports.take()
            if kind == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)
        else:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        return obj

    def release(self, service: dict[str, Any]) -> None:
        spec = service.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if ip and ip != "None":
            self.addresses.release_cluster_ip(ip)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self.node_ports.release(int(port["nodePort"]))
