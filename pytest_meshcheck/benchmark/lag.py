"""Observability lag: how long after a new client's first request Prometheus and Kiali show it.

Telemetry that earlier suites already produced would make any lag look like zero, so the lag is
measured on something that cannot exist before this run: a new curl client in a namespace of its
own (uniquely named by the caller), calling productpage. From its first successful request, it
keeps sending one request per poll while this module asks Prometheus for ``istio_requests_total``
series from that namespace and Kiali for the client -> productpage edge with traffic. Each lag is
the time of the first look that found it. Both can only change once per Prometheus scrape, so
that interval (plus the poll period) is recorded as the measurement's resolution.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.checks import graph as kiali_graph
from pytest_meshcheck.checks.kiali import KialiClient
from pytest_meshcheck.checks.probe import Probe, ProbeResult
from pytest_meshcheck.checks.prometheus import PrometheusClient
from pytest_meshcheck.errors import CheckFailed, ReadinessTimeout
from pytest_meshcheck.install.bookinfo import install_app
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.wait import Progress, wait_until
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import Settings

CLIENT_APP = "curl"
POLL_INTERVAL_S = 0.5
_WHERE = "benchmark-client"


def series_query(client_namespace: str) -> str:
    return f'sum(istio_requests_total{{source_workload_namespace="{client_namespace}"}})'


@dataclass(kw_only=True)
class LagMeasurement:
    """The two lags (None until seen) and what the last looks returned, for evidence."""

    client: str
    target: str
    prometheus_lag_s: float | None = None
    kiali_lag_s: float | None = None
    resolution_s: float = 0.0
    requests_sent: int = 0
    requests_ok: int = 0
    last_samples: list[dict[str, Any]] = field(default_factory=list)
    last_graph: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, str]:
        return {
            "Prometheus samples (last look)": json.dumps(self.last_samples, indent=2),
            "Kiali graph (last look)": json.dumps(self.last_graph, indent=2)[:200_000],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "target": self.target,
            "prometheus_lag_s": self.prometheus_lag_s,
            "kiali_lag_s": self.kiali_lag_s,
            "resolution_s": self.resolution_s,
            "requests_sent": self.requests_sent,
            "requests_ok": self.requests_ok,
        }


def install_client(kube: Kube, settings: Settings, namespace: str, *, injection_revision: str) -> None:
    """The probes' curl client, in ``namespace`` (injected): a source no telemetry has seen yet."""
    install_app(
        kube,
        settings,
        namespace=namespace,
        manifests=[data_file("probes", "curl.yaml")],
        injected=True,
        injection_revision=injection_revision,
    )


def measure_lag(
    kube: Kube,
    *,
    client_namespace: str,
    app_namespace: str,
    prometheus: PrometheusClient,
    kiali: KialiClient,
    scrape_interval_s: float,
    timeout: float,
) -> LagMeasurement:
    """Send from the new client until both backends show it; ``CheckFailed`` after ``timeout``."""
    probe = Probe(kube, namespaces={_WHERE: client_namespace}, timeout=timeout)
    url = f"http://productpage.{app_namespace}:9080/productpage"
    edge = kiali_graph.EdgeRef(
        kiali_graph.NodeRef(client_namespace, CLIENT_APP), kiali_graph.NodeRef(app_namespace, "productpage")
    )
    expected = kiali_graph.ExpectedGraph(edges=(edge,), absent=())
    found = LagMeasurement(client=f"{client_namespace}/{CLIENT_APP}", target=url)
    first_ok: list[float] = []
    periods: list[float] = []
    last: list[ProbeResult] = []

    def look() -> Progress:
        began = time.monotonic()
        result = probe.curl(url, where=_WHERE)
        last[:] = [result]
        found.requests_sent += 1
        if result.status == 200:
            found.requests_ok += 1
            if not first_ok:
                first_ok.append(began)
        if not first_ok:
            return Progress(
                False, f"no successful request yet (last: {result.status or result.stderr.strip()[:120]})"
            )
        if found.prometheus_lag_s is None:
            seen_at = time.monotonic()
            samples = prometheus.query(series_query(client_namespace))
            found.last_samples = [{**s.labels, "value": s.value} for s in samples]
            if any(s.value > 0 for s in samples):
                found.prometheus_lag_s = seen_at - first_ok[0]
        if found.kiali_lag_s is None:
            seen_at = time.monotonic()
            found.last_graph = kiali.graph([client_namespace, app_namespace])
            diff = kiali_graph.compare(expected, found.last_graph, max_5xx_share=1.0)
            if not diff.missing and not diff.without_traffic:
                found.kiali_lag_s = seen_at - first_ok[0]
        periods.append(time.monotonic() - began)
        waiting = [
            name
            for name, lag in (
                ("Prometheus series", found.prometheus_lag_s),
                (f"Kiali edge {edge}", found.kiali_lag_s),
            )
            if lag is None
        ]
        state = "waiting for " + " and ".join(waiting) if waiting else "both seen"
        return Progress(not waiting, f"{state} ({found.requests_ok}/{found.requests_sent} requests ok)")

    try:
        wait_until(
            look,
            what=f"telemetry of a new client {found.client} -> {url} in Prometheus and Kiali",
            timeout=timeout,
            interval=POLL_INTERVAL_S,
        )
    except ReadinessTimeout as exc:
        raise CheckFailed(
            f"observability lag: {exc.message} (Prometheus lag "
            f"{_shown(found.prometheus_lag_s)}, Kiali lag {_shown(found.kiali_lag_s)}, query "
            f"{series_query(client_namespace)!r})",
            evidence={**found.evidence(), "last request": _request_text(last)},
        ) from exc
    found.resolution_s = scrape_interval_s + max(periods, default=0.0) + POLL_INTERVAL_S
    return found


def _shown(lag: float | None) -> str:
    return "not seen" if lag is None else f"{lag:.1f}s"


def _request_text(last: list[ProbeResult]) -> str:
    if not last:
        return "(none sent)"
    result = last[0]
    return f"{result.source}: status {result.status}, exit {result.exit_code}, stderr {result.stderr[:500]!r}"
