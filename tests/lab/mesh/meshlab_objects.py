"""Kubernetes/Istio objects for mesh tests, shaped as the API serves them."""

from __future__ import annotations

from typing import Any

_counter = [0]


def _stamp() -> str:
    _counter[0] += 1
    return f"2026-01-01T00:{_counter[0] // 60:02d}:{_counter[0] % 60:02d}Z"


def pod(
    name: str,
    namespace: str,
    ip: str,
    labels: dict[str, str],
    *,
    ports: tuple[int, ...] = (9080,),
    service_account: str = "default",
    sidecar: bool = True,
    workload: str | None = None,
) -> dict[str, Any]:
    all_labels = dict(labels)
    if sidecar:
        all_labels["security.istio.io/tlsMode"] = "istio"
    containers: list[dict[str, Any]] = [
        {"name": "app", "image": "app", "ports": [{"containerPort": p, "name": f"http-{p}"} for p in ports]}
    ]
    if sidecar:
        containers.append(
            {
                "name": "istio-proxy",
                "image": "docker.io/istio/proxyv2:1.24.2",
                "args": ["proxy", "sidecar"],
                "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}],
            }
        )
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": all_labels,
        "creationTimestamp": _stamp(),
    }
    if workload:
        pod_hash = "5c8d9f7b6"
        all_labels["pod-template-hash"] = pod_hash
        meta["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": f"{workload}-{pod_hash}", "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"serviceAccountName": service_account, "containers": containers},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def service(
    name: str,
    namespace: str,
    cluster_ip: str,
    selector: dict[str, str],
    ports: tuple[tuple[str, int, int | str], ...] = (("http", 9080, 9080),),
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": _stamp()},
        "spec": {
            "clusterIP": cluster_ip,
            "selector": selector,
            "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports],
        },
    }


def istio(
    kind: str, name: str, namespace: str, spec: dict[str, Any], api: str = "networking.istio.io/v1"
) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": _stamp()},
        "spec": spec,
    }


def peer_auth(
    name: str,
    namespace: str,
    mode: str | None,
    *,
    selector: dict[str, str] | None = None,
    port_level: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if port_level:
        spec["portLevelMtls"] = {p: {"mode": m} for p, m in port_level.items()}
    return istio("PeerAuthentication", name, namespace, spec, api="security.istio.io/v1")


def group(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Objects by the config document's kind names."""
    plural = {
        "Pod": "pods",
        "Service": "services",
        "VirtualService": "virtualservices",
        "DestinationRule": "destinationrules",
        "Gateway": "gateways",
        "PeerAuthentication": "peerauthentications",
    }
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        grouped.setdefault(plural[obj["kind"]], []).append(obj)
    return grouped
