"""A small Prometheus HTTP API client that goes through the API server's service proxy.

Going through ``services/proxy`` means no port-forward or load balancer is needed on any cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.proxy import service_request


@dataclass(frozen=True, kw_only=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    def __init__(
        self, kube: Kube, *, namespace: str = "istio-system", service: str = "prometheus", port: int = 9090
    ):
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.port = port

    def _get(self, path: str, params: dict[str, str]) -> Any:
        response = service_request(self.kube, self.namespace, self.service, self.port, path, params=params)
        if response.status != 200:
            raise EnvironmentProblem(
                f"Prometheus answered {response.status} to {path}",
                evidence={"prometheus response": response.text()[:4000]},
            )
        body = json.loads(response.body)
        if body.get("status") != "success":
            raise EnvironmentProblem(f"Prometheus query failed: {body.get('error', body)}")
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        """An instant vector query; each sample's labels and value."""
        data = self._get("/api/v1/query", {"query": promql})
        if data.get("resultType") != "vector":
            raise EnvironmentProblem(f"expected a vector from {promql!r}, got {data.get('resultType')}")
        return [Sample(labels=dict(item["metric"]), value=float(item["value"][1])) for item in data["result"]]

    def targets(self) -> list[dict[str, Any]]:
        data = self._get("/api/v1/targets", {"state": "active"})
        return list(data.get("activeTargets", []))

    def build_version(self) -> str:
        data = self._get("/api/v1/status/buildinfo", {})
        return str(data.get("version", ""))
