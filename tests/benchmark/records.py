"""Benchmark records for the unit tests, built from plain numbers."""

from __future__ import annotations

from pytest_meshcheck.benchmark.metrics import MetricValue
from pytest_meshcheck.benchmark.record import BenchmarkRecord, GeneratorNote, LoadShape

SHAPE = LoadShape(
    mode="closed-loop",
    users=5,
    spawn_rate=5.0,
    workers=0,
    target_rps=None,
    duration_s=20.0,
    warmup_s=5.0,
)

ENVIRONMENT = {
    "cluster": "lab",
    "provider": "lab",
    "kubernetes_version": "v1.31.0",
    "istio_version": "1.30.3",
    "istio_revision": "default",
    "host_cores": "2",
    "lab_faults": "",
}

#: A healthy lab run, roughly as measured (ms, req/s, s).
HEALTHY: dict[str, float] = {
    "gateway_rps": 80.0,
    "gateway_p50_ms": 40.0,
    "gateway_p90_ms": 70.0,
    "gateway_p99_ms": 120.0,
    "bypass_rps": 200.0,
    "bypass_p50_ms": 15.0,
    "bypass_p90_ms": 25.0,
    "bypass_p99_ms": 50.0,
    "mesh_added_p50_ms": 25.0,
    "mesh_added_p90_ms": 45.0,
    "mesh_added_p99_ms": 70.0,
    "kiali_lag_s": 11.0,
    "prometheus_lag_s": 6.0,
    "convergence_s": 0.8,
}

#: Resolutions as the measurements record them (lag: 5 s scrape interval plus the poll period).
RESOLUTION = {"kiali_lag_s": 6.5, "prometheus_lag_s": 6.5, "convergence_s": 0.05}


def record(
    metrics: dict[str, float] | None = None,
    *,
    environment: dict[str, str] | None = None,
    shape: LoadShape = SHAPE,
    saturated: bool = False,
    name: str = "",
) -> BenchmarkRecord:
    values = HEALTHY if metrics is None else metrics
    return BenchmarkRecord(
        name=name,
        created="2025-01-01T00:00:00+00:00",
        load_shape=shape,
        environment=dict(ENVIRONMENT if environment is None else environment),
        metrics={
            key: MetricValue(value=value, resolution=RESOLUTION.get(key, 1.0))
            for key, value in values.items()
        },
        generators={
            "gateway": GeneratorNote(
                saturated=saturated, busiest_share=0.95 if saturated else 0.4, requests=1600, failures=0
            ),
            "bypass": GeneratorNote(saturated=False, busiest_share=0.5, requests=4000, failures=0),
        },
        notes=("load is closed-loop",),
    )


def changed(**values: float) -> dict[str, float]:
    return {**HEALTHY, **values}
