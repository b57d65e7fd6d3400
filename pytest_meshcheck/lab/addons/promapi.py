"""Kiali's side of the Prometheus HTTP API: instant queries, answered as label sets and values.

The client goes through the container's dialer, so Kiali reaches Prometheus the way a pod does
(cluster DNS name from Kiali's ``external_services.prometheus.url``, kube-proxy, sidecar if any).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from pytest_meshcheck.lab.contract import Dialer
from pytest_meshcheck.lab.workloads.outbound import CallFailed, OutboundClient

QUERY_TIMEOUT = 10.0


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or refused the query (Kiali answers 503 then)."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


class PrometheusApi(Protocol):
    def query(self, promql: str, at: float) -> list[Sample]:
        """Evaluate ``promql`` at unix time ``at``."""
        ...

    def version(self) -> str:
        """The server's version ("" when unknown)."""
        ...


def parse_vector(payload: object) -> list[Sample]:
    """``/api/v1/query``'s JSON answer -> samples; NaN and infinite values are left out."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else payload
        raise PrometheusUnavailable(f"query failed: {error}")
    data = payload.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusUnavailable(f"expected a vector, got {data.get('resultType')!r}")
    samples: list[Sample] = []
    for item in data.get("result") or []:
        value = float(item["value"][1])
        if math.isfinite(value):
            samples.append(Sample(labels={str(k): str(v) for k, v in item["metric"].items()}, value=value))
    return samples


class HttpPrometheus:
    """The Prometheus HTTP API at ``url`` (``http://prometheus.istio-system:9090``)."""

    def __init__(self, url: str, dialer: Dialer) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "prometheus"
        self.port = parts.port or 9090
        self.prefix = parts.path.rstrip("/")
        self._client = OutboundClient(dialer, user_agent="kiali")

    def _get(self, path: str) -> object:
        try:
            reply = self._client.get(
                self.host, self.port, self.prefix + path, headers=[], timeout=QUERY_TIMEOUT
            )
        except CallFailed as exc:
            raise PrometheusUnavailable(str(exc)) from exc
        try:
            return reply.json()
        except ValueError as exc:
            raise PrometheusUnavailable(f"HTTP {reply.status}: not JSON") from exc

    def query(self, promql: str, at: float) -> list[Sample]:
        return parse_vector(self._get("/api/v1/query?" + urlencode({"query": promql, "time": f"{at:.3f}"})))

    def version(self) -> str:
        try:
            payload = self._get("/api/v1/status/buildinfo")
        except PrometheusUnavailable:
            return ""
        data = payload.get("data") if isinstance(payload, dict) else None
        return str(data.get("version", "")) if isinstance(data, dict) else ""

    def close(self) -> None:
        self._client.abort_all()
