"""Prometheus' Kubernetes service discovery, computed from Kubernetes objects as target groups.

Prometheus' ``kubernetes_sd_configs`` talks to the API server in protobuf; the lab's Prometheus
gets the same targets through ``http_sd_configs`` instead (see ``promconfig``). For the addon's
relabel rules to keep working unchanged, each role here yields the targets and the
``__meta_kubernetes_*`` labels Prometheus' own discovery yields for it (names as in Prometheus'
documentation of ``kubernetes_sd_config``), in HTTP SD's JSON shape:
``[{"targets": ["ip:port"], "labels": {...}}]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

META = "__meta_kubernetes_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")

TargetGroup = dict[str, Any]


def sanitize(name: str) -> str:
    """A Kubernetes label or annotation name as a Prometheus label name part, as Prometheus
    sanitises it: every character outside ``[a-zA-Z0-9_]`` becomes ``_``."""
    return _INVALID.sub("_", name)


def _object_meta(prefix: str, meta: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in (meta.get("labels") or {}).items():
        name = sanitize(key)
        labels[f"{prefix}_label_{name}"] = str(value)
        labels[f"{prefix}_labelpresent_{name}"] = "true"
    for key, value in (meta.get("annotations") or {}).items():
        name = sanitize(key)
        labels[f"{prefix}_annotation_{name}"] = str(value)
        labels[f"{prefix}_annotationpresent_{name}"] = "true"
    return labels


def _pod_ready(pod: Mapping[str, Any]) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "unknown")).lower()
    return "unknown"


def _controller(meta: Mapping[str, Any]) -> dict[str, str]:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            return {
                f"{META}pod_controller_kind": str(owner.get("kind", "")),
                f"{META}pod_controller_name": str(owner.get("name", "")),
            }
    return {}


def _container_ids(pod: Mapping[str, Any]) -> dict[str, str]:
    status = pod.get("status") or {}
    ids: dict[str, str] = {}
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        if entry.get("containerID"):
            ids[str(entry.get("name"))] = str(entry["containerID"])
    return ids


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod-level labels every target of a pod carries."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = {
        f"{META}namespace": str(meta.get("namespace", "")),
        f"{META}pod_name": str(meta.get("name", "")),
        f"{META}pod_ip": str(status.get("podIP", "")),
        f"{META}pod_ready": _pod_ready(pod),
        f"{META}pod_phase": str(status.get("phase", "")),
        f"{META}pod_node_name": str(spec.get("nodeName", "")),
        f"{META}pod_host_ip": str(status.get("hostIP", "")),
        f"{META}pod_uid": str(meta.get("uid", "")),
    }
    labels.update(_controller(meta))
    labels.update(_object_meta(f"{META}pod", meta))
    return labels


def pod_targets(pods: Iterable[Mapping[str, Any]]) -> list[TargetGroup]:
    """Role ``pod``: one target per declared container port, one port-less target per container
    that declares none; pods without an IP yet are not targets."""
    groups: list[TargetGroup] = []
    for pod in pods:
        ip = str((pod.get("status") or {}).get("podIP") or "")
        if not ip:
            continue
        common = pod_labels(pod)
        spec = pod.get("spec") or {}
        ids = _container_ids(pod)
        kinds = [(c, "false") for c in spec.get("containers") or []]
        kinds += [(c, "true") for c in spec.get("initContainers") or []]
        for container, init in kinds:
            name = str(container.get("name", ""))
            base = {
                **common,
                f"{META}pod_container_name": name,
                f"{META}pod_container_image": str(container.get("image", "")),
                f"{META}pod_container_init": init,
            }
            if name in ids:
                base[f"{META}pod_container_id"] = ids[name]
            ports = container.get("ports") or []
            if not ports:
                groups.append({"targets": [ip], "labels": base})
                continue
            for port in ports:
                number = str(port.get("containerPort", ""))
                groups.append(
                    {
                        "targets": [f"{ip}:{number}"],
                        "labels": {
                            **base,
                            f"{META}pod_container_port_name": str(port.get("name", "")),
                            f"{META}pod_container_port_number": number,
                            f"{META}pod_container_port_protocol": str(port.get("protocol", "TCP")),
                        },
                    }
                )
    return groups


def service_labels(service: Mapping[str, Any]) -> dict[str, str]:
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    labels = {
        f"{META}namespace": str(meta.get("namespace", "")),
        f"{META}service_name": str(meta.get("name", "")),
        f"{META}service_type": str(spec.get("type", "ClusterIP")),
    }
    if spec.get("clusterIP"):
        labels[f"{META}service_cluster_ip"] = str(spec["clusterIP"])
    labels.update(_object_meta(f"{META}service", meta))
    return labels


def service_targets(services: Iterable[Mapping[str, Any]]) -> list[TargetGroup]:
    """Role ``service``: one target per service port, addressed by the service's DNS name."""
    groups: list[TargetGroup] = []
    for service in services:
        meta = service.get("metadata") or {}
        common = service_labels(service)
        host = f"{meta.get('name')}.{meta.get('namespace')}.svc"
        for port in (service.get("spec") or {}).get("ports") or []:
            number = str(port.get("port", ""))
            labels = {
                **common,
                f"{META}service_port_name": str(port.get("name", "")),
                f"{META}service_port_number": number,
                f"{META}service_port_protocol": str(port.get("protocol", "TCP")),
            }
            groups.append({"targets": [f"{host}:{number}"], "labels": labels})
    return groups


def endpoints_targets(
    endpoints: Iterable[Mapping[str, Any]],
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    pods: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[TargetGroup]:
    """Role ``endpoints``: one target per address and port of each Endpoints object, with the
    service's labels and, for addresses backed by a pod, the pod's."""
    groups: list[TargetGroup] = []
    for item in endpoints:
        meta = item.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        name = str(meta.get("name", ""))
        common = {
            f"{META}namespace": namespace,
            f"{META}endpoints_name": name,
            **_object_meta(f"{META}endpoints", meta),
        }
        service = services.get((namespace, name))
        if service is not None:
            common.update(service_labels(service))
        for subset in item.get("subsets") or []:
            addresses = [(a, "true") for a in subset.get("addresses") or []]
            addresses += [(a, "false") for a in subset.get("notReadyAddresses") or []]
            for address, ready in addresses:
                ref = address.get("targetRef") or {}
                labels = {**common, f"{META}endpoint_ready": ready}
                if address.get("hostname"):
                    labels[f"{META}endpoint_hostname"] = str(address["hostname"])
                if address.get("nodeName"):
                    labels[f"{META}endpoint_node_name"] = str(address["nodeName"])
                if ref:
                    labels[f"{META}endpoint_address_target_kind"] = str(ref.get("kind", ""))
                    labels[f"{META}endpoint_address_target_name"] = str(ref.get("name", ""))
                pod = pods.get((namespace, str(ref.get("name", "")))) if ref.get("kind") == "Pod" else None
                if pod is not None:
                    labels.update(pod_labels(pod))
                for port in subset.get("ports") or []:
                    groups.append(
                        {
                            "targets": [f"{address.get('ip')}:{port.get('port')}"],
                            "labels": {
                                **labels,
                                f"{META}endpoint_port_name": str(port.get("name", "")),
                                f"{META}endpoint_port_protocol": str(port.get("protocol", "TCP")),
                            },
                        }
                    )
    return groups


def node_targets(nodes: Iterable[Mapping[str, Any]]) -> list[TargetGroup]:
    """Role ``node``: the kubelet's address (first InternalIP, port 10250) per node."""
    groups: list[TargetGroup] = []
    for node in nodes:
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        labels = {f"{META}node_name": str(meta.get("name", "")), **_object_meta(f"{META}node", meta)}
        addresses = status.get("addresses") or []
        for address in addresses:
            labels.setdefault(f"{META}node_address_{address.get('type')}", str(address.get("address", "")))
        internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
        host = internal or (addresses[0].get("address") if addresses else None)
        if not host:
            continue
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
        groups.append({"targets": [f"{host}:{port}"], "labels": labels})
    return groups
