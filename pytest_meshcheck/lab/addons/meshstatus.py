"""What Kiali reads from Kubernetes and Istio objects (not from telemetry): mesh-wide and
namespace mTLS status from PeerAuthentications, component status from Deployments, and the
Istio config validations Kiali reports as errors and warnings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.addons.mounts import ObjectReader
from pytest_meshcheck.lab.resources import GVR

PEER_AUTHENTICATIONS = GVR("security.istio.io", "v1", "peerauthentications")
DESTINATION_RULES = GVR("networking.istio.io", "v1", "destinationrules")
VIRTUAL_SERVICES = GVR("networking.istio.io", "v1", "virtualservices")
GATEWAYS = GVR("networking.istio.io", "v1", "gateways")
DEPLOYMENTS = GVR("apps", "v1", "deployments")
SERVICES = GVR.core("services")
PODS = GVR.core("pods")
NAMESPACES = GVR.core("namespaces")

MTLS_ENABLED = "MTLS_ENABLED"
MTLS_PARTIALLY_ENABLED = "MTLS_PARTIALLY_ENABLED"
MTLS_NOT_ENABLED = "MTLS_NOT_ENABLED"
MTLS_DISABLED = "MTLS_DISABLED"


def list_or_empty(store: ObjectReader, gvr: GVR, namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects, or none when the kind is not installed (Istio's CRDs may be missing)."""
    try:
        return store.list(gvr, namespace)[0]
    except Exception:
        return []


def _mode(policy: Mapping[str, Any]) -> str:
    return str(((policy.get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET").upper()


def _selects_workloads(policy: Mapping[str, Any]) -> bool:
    return bool(((policy.get("spec") or {}).get("selector") or {}).get("matchLabels"))


def mesh_tls_status(store: ObjectReader, root_namespace: str) -> str:
    """Mesh-wide: STRICT in the root namespace without a selector is enabled; any policy that
    weakens it elsewhere, or STRICT only in some namespaces, is partial."""
    policies = list_or_empty(store, PEER_AUTHENTICATIONS)
    mesh = [
        p for p in policies if p["metadata"].get("namespace") == root_namespace and not _selects_workloads(p)
    ]
    others = [p for p in policies if p not in mesh]
    mesh_strict = any(_mode(p) == "STRICT" for p in mesh)
    if mesh_strict:
        weakened = any(_mode(p) in ("PERMISSIVE", "DISABLE") for p in others)
        return MTLS_PARTIALLY_ENABLED if weakened else MTLS_ENABLED
    if any(_mode(p) == "STRICT" for p in others):
        return MTLS_PARTIALLY_ENABLED
    return MTLS_NOT_ENABLED


def namespace_tls_status(store: ObjectReader, namespace: str, root_namespace: str) -> str:
    policies = [p for p in list_or_empty(store, PEER_AUTHENTICATIONS, namespace) if not _selects_workloads(p)]
    modes = {_mode(p) for p in policies}
    if "STRICT" in modes:
        return MTLS_ENABLED
    if "DISABLE" in modes:
        return MTLS_DISABLED
    if "PERMISSIVE" in modes:
        return MTLS_NOT_ENABLED
    return "" if mesh_tls_status(store, root_namespace) != MTLS_ENABLED else MTLS_ENABLED


def deployment_status(deployment: Mapping[str, Any] | None) -> str:
    if deployment is None:
        return "NotFound"
    wanted = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    return "Healthy" if wanted > 0 and available >= wanted else "Unhealthy"


def component_status(
    store: ObjectReader, istio_namespace: str, cluster: str, prometheus_reachable: bool
) -> list[dict[str, Any]]:
    """Kiali's ``/api/istio/status``: istiod (every revision) and the ingress gateway from their
    Deployments; Prometheus by whether it answers."""
    deployments = list_or_empty(store, DEPLOYMENTS, istio_namespace)
    by_name = {d["metadata"]["name"]: d for d in deployments}
    istiods = [name for name in by_name if name == "istiod" or name.startswith("istiod-")] or ["istiod"]
    components = [
        {"cluster": cluster, "namespace": istio_namespace, "name": name, "is_core": True,
         "status": deployment_status(by_name.get(name))}
        for name in sorted(istiods)
    ]  # fmt: skip
    components.append(
        {
            "cluster": cluster,
            "namespace": istio_namespace,
            "name": "istio-ingressgateway",
            "is_core": False,
            "status": deployment_status(by_name.get("istio-ingressgateway")),
        }
    )
    components.append(
        {
            "cluster": cluster,
            "namespace": istio_namespace,
            "name": "prometheus",
            "is_core": False,
            "status": "Healthy" if prometheus_reachable else "Unreachable",
        }
    )
    return components


def _service_hosts(store: ObjectReader) -> set[str]:
    hosts: set[str] = set()
    for service in list_or_empty(store, SERVICES):
        name, ns = service["metadata"]["name"], service["metadata"].get("namespace", "")
        hosts |= {f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"}
    return hosts


def _fqdn(host: str, namespace: str) -> str:
    return host if "." in host else f"{host}.{namespace}"


def validations(store: ObjectReader, namespaces: list[str]) -> dict[str, dict[str, int]]:
    """Per namespace: errors, warnings and object count over VirtualServices (routes to hosts that
    do not exist: KIA1101), DestinationRules (subsets no pod matches: KIA0203) and Gateways."""
    hosts = _service_hosts(store)
    summary: dict[str, dict[str, int]] = {}
    for namespace in namespaces:
        errors = warnings = count = 0
        for vs in list_or_empty(store, VIRTUAL_SERVICES, namespace):
            count += 1
            for route_kind in ("http", "tcp", "tls"):
                for route in (vs.get("spec") or {}).get(route_kind) or []:
                    for destination in route.get("route") or []:
                        host = str((destination.get("destination") or {}).get("host", ""))
                        fqdn = _fqdn(host, namespace)
                        if host and not host.startswith("*") and fqdn not in hosts and host not in hosts:
                            errors += 1
        pods = list_or_empty(store, PODS, namespace)
        for rule in list_or_empty(store, DESTINATION_RULES, namespace):
            count += 1
            for subset in (rule.get("spec") or {}).get("subsets") or []:
                labels = subset.get("labels") or {}
                matched = any(
                    all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
                    for p in pods
                )
                if labels and not matched:
                    warnings += 1
        count += len(list_or_empty(store, GATEWAYS, namespace))
        summary[namespace] = {"errors": errors, "objectCount": count, "warnings": warnings}
    return summary
