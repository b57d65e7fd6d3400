"""Putting one run's measurements together into a ``BenchmarkRecord``.

The environment is recorded with the numbers because a baseline is only meaningful next to what
produced it: another Istio release, another cluster kind or a host with fewer cores explains a
difference better than any mesh regression. The load generator's own account is kept too (how
busy it was, and whether it was the bottleneck).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata

from pytest_meshcheck.benchmark.convergence import ConvergenceMeasurement
from pytest_meshcheck.benchmark.lag import LagMeasurement
from pytest_meshcheck.benchmark.load_shapes import TargetMeasurement
from pytest_meshcheck.benchmark.metrics import MetricValue
from pytest_meshcheck.benchmark.record import BenchmarkRecord, LoadShape


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def environment(
    *,
    cluster: str,
    provider: str,
    kubernetes_version: str,
    istio_version: str,
    istio_revision: str,
    lab_faults: tuple[str, ...],
    load_generator: str,
) -> dict[str, str]:
    """What a baseline depends on besides the mesh; keys ``compare`` warns about when they differ."""
    return {
        "cluster": cluster,
        "provider": provider,
        "kubernetes_version": kubernetes_version,
        "istio_version": istio_version,
        "istio_revision": istio_revision or "default",
        "lab_faults": ",".join(lab_faults),
        "host_cores": str(os.cpu_count() or 0),
        "host": platform.platform(terse=True),
        "python": platform.python_version(),
        "locust": _package_version("locust"),
        "pytest_meshcheck": _package_version("pytest-meshcheck"),
        "load_generator": load_generator,
    }


def _added(gateway: MetricValue, bypass: MetricValue) -> MetricValue:
    return MetricValue(
        value=round(gateway.value - bypass.value, 3), resolution=gateway.resolution + bypass.resolution
    )


def build_record(
    *,
    shape: LoadShape,
    env: Mapping[str, str],
    gateway: TargetMeasurement,
    bypass: TargetMeasurement,
    lag: LagMeasurement,
    convergence: ConvergenceMeasurement,
) -> BenchmarkRecord:
    """The record of a complete run: every metric of the catalogue, with its resolution."""
    through = gateway.metrics("gateway")
    outside = bypass.metrics("bypass")
    metrics: dict[str, MetricValue] = {**through, **outside}
    for percentile in ("p50", "p90", "p99"):
        metrics[f"mesh_added_{percentile}_ms"] = _added(
            through[f"gateway_{percentile}_ms"], outside[f"bypass_{percentile}_ms"]
        )
    if lag.kiali_lag_s is not None:
        metrics["kiali_lag_s"] = MetricValue(value=round(lag.kiali_lag_s, 3), resolution=lag.resolution_s)
    if lag.prometheus_lag_s is not None:
        metrics["prometheus_lag_s"] = MetricValue(
            value=round(lag.prometheus_lag_s, 3), resolution=lag.resolution_s
        )
    if convergence.convergence_s is not None:
        metrics["convergence_s"] = MetricValue(
            value=round(convergence.convergence_s, 3), resolution=convergence.resolution_s
        )
    notes = [
        f"load is {shape.mode}"
        + (
            ": each user waits for its answer, so throughput follows latency"
            if shape.mode == "closed-loop"
            else f": target {shape.target_rps:g} req/s, a ceiling the generator tries to reach"
        )
    ]
    for label, measured in (("gateway", gateway), ("bypass", bypass)):
        if measured.result.target_missed:
            notes.append(
                f"{label}: the target rate was not reached ({measured.result.achieved_rps:.1f} req/s)"
            )
        if measured.result.generator_saturated:
            notes.append(f"{label}: the load generator was saturated (CPU near 100% of a core)")
    return BenchmarkRecord(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        load_shape=shape,
        environment=dict(env),
        metrics=metrics,
        generators={"gateway": gateway.generator(), "bypass": bypass.generator()},
        notes=tuple(notes),
    )
