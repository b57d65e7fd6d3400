"""Kiali's health for apps, workloads and services: replicas from Deployments, request rates by
protocol and response code from Prometheus, in the shape of Kiali's health API."""

from __future__ import annotations

from typing import Any

from pytest_meshcheck.lab.addons.meshstatus import DEPLOYMENTS, SERVICES, list_or_empty
from pytest_meshcheck.lab.addons.mounts import ObjectReader
from pytest_meshcheck.lab.addons.promapi import PrometheusApi, Sample

HEALTH_TYPES = {"app": "canonical_service", "workload": "workload", "service": "service_name"}


def _rates(samples: list[Sample], name_label: str) -> dict[str, dict[str, dict[str, float]]]:
    """name -> protocol -> response code -> requests/s."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for sample in samples:
        name = sample.labels.get(name_label, "")
        protocol = sample.labels.get("request_protocol", "http") or "http"
        code = sample.labels.get("response_code", "-") or "-"
        codes = result.setdefault(name, {}).setdefault(protocol, {})
        codes[code] = codes.get(code, 0.0) + sample.value
    return result


def request_rates(
    prometheus: PrometheusApi, namespace: str, *, kind: str, interval: int, at: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inbound, outbound) rates per app/workload/service name of ``namespace``."""
    label = HEALTH_TYPES[kind]
    inbound_query = (
        f'sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{namespace}"}}'
        f"[{interval}s])) by (destination_{label},request_protocol,response_code)"
    )
    inbound = _rates(prometheus.query(inbound_query, at), f"destination_{label}")
    if kind == "service":
        return inbound, {}
    outbound_query = (
        f'sum(rate(istio_requests_total{{reporter="source",source_workload_namespace="{namespace}"}}'
        f"[{interval}s])) by (source_{label},request_protocol,response_code)"
    )
    return inbound, _rates(prometheus.query(outbound_query, at), f"source_{label}")


def _workload_status(deployment: dict[str, Any]) -> dict[str, Any]:
    status = deployment.get("status") or {}
    return {
        "name": deployment["metadata"]["name"],
        "desiredReplicas": int((deployment.get("spec") or {}).get("replicas", 1) or 0),
        "currentReplicas": int(status.get("replicas") or 0),
        "availableReplicas": int(status.get("availableReplicas") or 0),
        "syncedProxies": -1,
    }


def namespace_health(
    store: ObjectReader, prometheus: PrometheusApi, namespace: str, *, kind: str, interval: int, at: float
) -> dict[str, Any]:
    """Health of every app, workload or service of ``namespace``, keyed by name."""
    inbound, outbound = request_rates(prometheus, namespace, kind=kind, interval=interval, at=at)
    deployments = list_or_empty(store, DEPLOYMENTS, namespace)
    health: dict[str, Any] = {}
    if kind == "service":
        for service in list_or_empty(store, SERVICES, namespace):
            name = service["metadata"]["name"]
            health[name] = {
                "requests": {"inbound": inbound.get(name, {}), "outbound": {}, "healthAnnotations": {}}
            }
        return health
    for deployment in deployments:
        labels = ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
            "labels"
        ) or {}
        status = _workload_status(deployment)
        if kind == "workload":
            name = deployment["metadata"]["name"]
            health[name] = {"workloadStatus": status}
        else:
            name = labels.get("service.istio.io/canonical-name") or labels.get("app") or ""
            if not name:
                continue
            health.setdefault(name, {"workloadStatuses": []})["workloadStatuses"].append(status)
        health[name]["requests"] = {
            "inbound": inbound.get(name, {}),
            "outbound": outbound.get(name, {}),
            "healthAnnotations": {},
        }
    return health
