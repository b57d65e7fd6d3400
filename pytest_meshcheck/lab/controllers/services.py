"""Service data plane: Endpoints and EndpointSlices from pods, kube-proxy frontends, DNS records
and LoadBalancer ingress, all derived from one look at a Service and its pods.

One controller does what kube-controller-manager's endpoints and endpointslice controllers, the
cloud's service controller and every node's kube-proxy do on a real cluster, because here they
share one address space and one computation: which pods back which port.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from pytest_meshcheck.lab.controllers.allocation import ServiceAllocator
from pytest_meshcheck.lab.controllers.base import Controller, Key, KeyMapper
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.controllers.pods import is_ready
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound, StoreError
from pytest_meshcheck.lab.runtime.dns import ClusterDNS, ServiceRecord
from pytest_meshcheck.lab.runtime.kubeproxy import Frontend, KubeProxy, can_listen
from pytest_meshcheck.lab.runtime.probes import resolve_port
from pytest_meshcheck.lab.store import GVR, Store

log = logging.getLogger(__name__)

SERVICES = GVR.core("services")
ENDPOINTS = GVR.core("endpoints")
SLICES = GVR.parse("discovery.k8s.io/v1/endpointslices")
PODS = GVR.core("pods")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"

#: (ip, node, pod, ready, serving, terminating, hostname) for one pod behind one port set.
Backend = dict[str, Any]


def _container_ports(pod: dict[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                ports[str(port["name"])] = int(port["containerPort"])
    return ports


class ServiceController(Controller):
    name = "endpoint-controller"
    primary = SERVICES

    def __init__(
        self,
        store: Store,
        *,
        allocator: ServiceAllocator,
        proxy: KubeProxy,
        dns: ClusterDNS,
        node_ips: list[str],
    ) -> None:
        super().__init__(store)
        self.allocator = allocator
        self.proxy = proxy
        self.dns = dns
        self.node_ips = node_ips
        self.events = EventRecorder(store, "service-controller")
        self._known: dict[Key, dict[str, Any]] = {}
        self._balancers: dict[Key, str] = {}

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(SERVICES, self._service_key), (PODS, self._services_of_pod), (ENDPOINTS, self._manual)]

    def _service_key(self, event: str, obj: dict[str, Any]) -> Iterable[Key]:
        meta = obj.get("metadata", {})
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event == "DELETED":
            self._forget(key, obj)
            return []
        return [key]

    def _services_of_pod(self, _event: str, obj: dict[str, Any]) -> Iterable[Key]:
        namespace = str(obj.get("metadata", {}).get("namespace", ""))
        return [key for key in list(self._known) if key[0] == namespace]

    def _manual(self, _event: str, obj: dict[str, Any]) -> Iterable[Key]:
        """User-managed Endpoints (services without a selector) feed the proxy too."""
        meta = obj.get("metadata", {})
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        service = self._known.get(key)
        if service is not None and not service.get("spec", {}).get("selector"):
            return [key]
        return []

    def _forget(self, key: Key, service: dict[str, Any]) -> None:
        self._known.pop(key, None)
        self.proxy.remove(f"{key[0]}/{key[1]}")
        self.dns.remove_service(*key)
        self.allocator.release(service)
        balancer = self._balancers.pop(key, None)
        if balancer:
            self.allocator.addresses.release_balancer_ip(balancer)
        with contextlib.suppress(StoreError):
            self.store.delete(ENDPOINTS, key[0], key[1])

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        try:
            service = self.store.get(SERVICES, namespace, name)
        except NotFound:
            return None
        self._known[key] = service
        spec = service.get("spec", {})
        if spec.get("type") == "ExternalName":
            self.dns.set_service(
                namespace, name, ServiceRecord(external_name=str(spec.get("externalName", "")))
            )
            self.proxy.remove(f"{namespace}/{name}")
            return None
        selector = spec.get("selector") or {}
        if selector:
            backends = self._pod_backends(service)
            subsets = self._write_endpoints(service, backends)
        else:
            subsets = self._read_manual_endpoints(namespace, name)
            backends = []
        self._write_slices(service, backends)
        self._program(service, subsets, backends)
        return None

    # -- endpoints -------------------------------------------------------------------------
    def _pod_backends(self, service: dict[str, Any]) -> list[Backend]:
        spec = service.get("spec", {})
        namespace = service["metadata"]["namespace"]
        selector = spec.get("selector") or {}
        publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
        pods, _ = self.store.list(PODS, namespace)
        backends: list[Backend] = []
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            status = pod.get("status") or {}
            ip = status.get("podIP")
            if not ip or status.get("phase") in ("Succeeded", "Failed"):
                continue
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            ready = is_ready(pod)
            named = _container_ports(pod)
            ports: list[tuple[str, int, str, str | None]] = []
            for port in spec.get("ports") or []:
                try:
                    target = resolve_port(port.get("targetPort", port.get("port")), named)
                except ValueError:
                    continue
                ports.append(
                    (
                        str(port.get("name") or ""),
                        target,
                        str(port.get("protocol", "TCP")),
                        port.get("appProtocol"),
                    )
                )
            backends.append(
                {
                    "ip": ip,
                    "node": pod.get("spec", {}).get("nodeName", ""),
                    "pod": pod,
                    "ready": (ready or publish_not_ready) and not terminating,
                    "serving": ready or publish_not_ready,
                    "terminating": terminating,
                    "hostname": pod.get("spec", {}).get("hostname")
                    if pod.get("spec", {}).get("subdomain") == service["metadata"]["name"]
                    else None,
                    "ports": tuple(ports),
                }
            )
        backends.sort(key=lambda b: tuple(int(part) for part in str(b["ip"]).split(".")))
        return backends

    @staticmethod
    def _address(backend: Backend) -> dict[str, Any]:
        pod = backend["pod"]
        entry: dict[str, Any] = {
            "ip": backend["ip"],
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if backend["node"]:
            entry["nodeName"] = backend["node"]
        if backend["hostname"]:
            entry["hostname"] = backend["hostname"]
        return entry

    def _write_endpoints(self, service: dict[str, Any], backends: list[Backend]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for backend in backends:
            if backend["terminating"] or not backend["ports"]:
                continue
            subset = groups.setdefault(
                backend["ports"],
                {
                    "ports": [
                        {
                            k: v
                            for k, v in {
                                "name": n or None,
                                "port": p,
                                "protocol": proto,
                                "appProtocol": app,
                            }.items()
                            if v is not None
                        }
                        for n, p, proto, app in backend["ports"]
                    ],
                },
            )
            bucket = "addresses" if backend["ready"] else "notReadyAddresses"
            subset.setdefault(bucket, []).append(self._address(backend))
        subsets: list[dict[str, Any]] = [
            {str(k): subset[k] for k in ("addresses", "notReadyAddresses", "ports") if k in subset}
            for subset in groups.values()
        ]
        meta = service["metadata"]
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": dict(meta.get("labels") or {}),
            },
        }
        if subsets:
            body["subsets"] = subsets
        try:
            current = self.store.get(ENDPOINTS, meta["namespace"], meta["name"])
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                self.store.create(ENDPOINTS, body, namespace=meta["namespace"])
            return subsets
        if (
            current.get("subsets") != body.get("subsets")
            or current["metadata"].get("labels") != body["metadata"]["labels"]
        ):
            current["metadata"]["labels"] = body["metadata"]["labels"]
            if subsets:
                current["subsets"] = subsets
            else:
                current.pop("subsets", None)
            self.store.update(ENDPOINTS, current)
        return subsets

    def _read_manual_endpoints(self, namespace: str, name: str) -> list[dict[str, Any]]:
        try:
            endpoints = self.store.get(ENDPOINTS, namespace, name)
        except NotFound:
            return []
        return list(endpoints.get("subsets") or [])

    def _write_slices(self, service: dict[str, Any], backends: list[Backend]) -> None:
        meta = service["metadata"]
        if not service.get("spec", {}).get("selector"):
            return
        existing, _ = self.store.list(
            SLICES,
            meta["namespace"],
            label_selector=f"{SERVICE_NAME_LABEL}={meta['name']},{MANAGED_BY}={SLICE_CONTROLLER}",
        )
        port_sets: dict[tuple[Any, ...], list[Backend]] = {}
        for backend in backends:
            port_sets.setdefault(backend["ports"], []).append(backend)
        if not port_sets:
            port_sets[()] = []
        wanted: list[dict[str, Any]] = []
        for ports, members in port_sets.items():
            wanted.append(
                {
                    "addressType": "IPv4",
                    "endpoints": [
                        {
                            "addresses": [b["ip"]],
                            "conditions": {
                                "ready": b["ready"],
                                "serving": b["serving"],
                                "terminating": b["terminating"],
                            },
                            **({"nodeName": b["node"]} if b["node"] else {}),
                            **({"hostname": b["hostname"]} if b["hostname"] else {}),
                            "targetRef": self._address(b)["targetRef"],
                        }
                        for b in members
                    ],
                    "ports": [
                        {
                            k: v
                            for k, v in {"name": n, "port": p, "protocol": proto, "appProtocol": app}.items()
                            if v is not None
                        }
                        for n, p, proto, app in ports
                    ]
                    if ports
                    else None,
                }
            )
        labels = {
            **(meta.get("labels") or {}),
            SERVICE_NAME_LABEL: meta["name"],
            MANAGED_BY: SLICE_CONTROLLER,
        }
        for index, content in enumerate(wanted):
            if index < len(existing):
                current = existing[index]
                if (
                    all(current.get(k) == content[k] for k in content)
                    and current["metadata"].get("labels") == labels
                ):
                    continue
                current.update(content)
                current["metadata"]["labels"] = labels
                self.store.update(SLICES, current)
                continue
            body = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": f"{meta['name']}-",
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                **content,
            }
            self.store.create(SLICES, body, namespace=meta["namespace"])
        for extra in existing[len(wanted) :]:
            try:
                self.store.delete(SLICES, meta["namespace"], extra["metadata"]["name"])
            except NotFound:
                continue

    # -- data plane ------------------------------------------------------------------------
    def _program(
        self, service: dict[str, Any], subsets: list[dict[str, Any]], backends: list[Backend]
    ) -> None:
        meta = service["metadata"]
        key = (meta["namespace"], meta["name"])
        spec = service.get("spec", {})
        cluster_ip = str(spec.get("clusterIP") or "")
        headless = cluster_ip in ("", "None")
        ready_ips = tuple(b["ip"] for b in backends if b["ready"]) or tuple(
            str(address["ip"]) for subset in subsets for address in subset.get("addresses") or []
        )
        hostnames = {str(b["hostname"]): str(b["ip"]) for b in backends if b["hostname"] and b["ready"]}
        self.dns.set_service(
            *key,
            ServiceRecord(
                cluster_ip="" if headless else cluster_ip, ready_ips=ready_ips, hostnames=hostnames
            ),
        )
        targets: dict[str, list[tuple[str, int]]] = {}
        for subset in subsets:
            ports = {str(p.get("name") or ""): int(p["port"]) for p in subset.get("ports") or []}
            for address in subset.get("addresses") or []:
                for port_name, port in ports.items():
                    targets.setdefault(port_name, []).append((str(address["ip"]), port))
        frontends: list[Frontend] = []
        service_type = spec.get("type") or "ClusterIP"
        balancer = self._balancer_ip(key, service) if service_type == "LoadBalancer" else ""
        for port in spec.get("ports") or []:
            if str(port.get("protocol", "TCP")) != "TCP":
                continue
            port_name = str(port.get("name") or "")
            if not headless:
                frontends.append(Frontend(cluster_ip, int(port["port"]), port_name))
            if port.get("nodePort") and service_type in ("NodePort", "LoadBalancer"):
                frontends += [Frontend(ip, int(port["nodePort"]), port_name) for ip in self.node_ips]
            if balancer:
                frontends.append(Frontend(balancer, int(port["port"]), port_name))
            for external in spec.get("externalIPs") or []:
                frontends.append(Frontend(str(external), int(port["port"]), port_name))
        failed = self.proxy.sync(f"{key[0]}/{key[1]}", frontends, targets)
        for frontend in failed:
            log.warning("service %s/%s: cannot listen on %s:%s", *key, frontend.ip, frontend.port)
        if service_type == "LoadBalancer":
            self._write_ingress(
                service, balancer if balancer and not any(f.ip == balancer for f in failed) else ""
            )
        elif (service.get("status") or {}).get("loadBalancer", {}).get("ingress"):
            self._write_ingress(service, "")

    def _balancer_ip(self, key: Key, service: dict[str, Any]) -> str:
        """An address for the "cloud LB", kept only if every service port can listen there."""
        if key in self._balancers:
            return self._balancers[key]
        address = self.allocator.addresses.balancer_ip()
        ports = [
            int(p["port"])
            for p in service.get("spec", {}).get("ports") or []
            if str(p.get("protocol", "TCP")) == "TCP"
        ]
        if not all(can_listen(address, port) for port in ports):
            self.allocator.addresses.release_balancer_ip(address)
            self.events.warning(
                service,
                "SyncLoadBalancerFailed",
                "Error syncing load balancer: cannot listen on the service ports",
            )
            return ""
        self._balancers[key] = address
        self.events.normal(service, "EnsuringLoadBalancer", "Ensuring load balancer")
        self.events.normal(service, "EnsuredLoadBalancer", "Ensured load balancer")
        return address

    def _write_ingress(self, service: dict[str, Any], address: str) -> None:
        status = service.setdefault("status", {})
        wanted = {"ingress": [{"ip": address, "ipMode": "VIP"}]} if address else {}
        if status.get("loadBalancer") == wanted:
            return
        status["loadBalancer"] = wanted
        self.store.update(SERVICES, service, subresource="status")

    def stop(self) -> None:
        super().stop()
        self.proxy.stop()
