"""The benchmark's metrics: what each one means, its unit, which way is better, and its noise floor.

A regression is a metric that got *worse* than the baseline by more than the tolerance (percent of
the baseline value, per metric). Percentages alone raise false alarms on small numbers: a p50 of
4 ms that becomes 6 ms is "+50%" but is noise on any shared machine, and an observability lag
measured at scrape-interval resolution jumps by a whole interval between identical runs. So a
change only counts when it is also larger, in absolute terms, than the metric's noise floor:

    regression  <=>  worse_by > max(noise_floor, resolution_before, resolution_after)
                     and worse_by > tolerance% of |before|

``noise_floor`` is fixed per metric (below); ``resolution`` is recorded with each measured value,
because it depends on how it was measured: Locust rounds latencies above 100 ms to 10 ms and above
1 s to 100 ms, lag can only be seen once per Prometheus scrape interval, and convergence once per
probe request. Reference metrics (the app measured outside the mesh) are never judged: they move
with the machine, not with the mesh, and a change in them is reported as a warning that the
environment changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One metric of the catalogue. ``judged=False`` marks a reference that never fails a compare."""

    name: str
    title: str
    unit: str
    better: Better
    noise_floor: float
    description: str
    judged: bool = True


@dataclass(frozen=True, kw_only=True)
class MetricValue:
    """A measured value and the smallest difference its measurement can tell apart."""

    value: float
    resolution: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "resolution": self.resolution}

    @classmethod
    def from_json(cls, data: Any) -> MetricValue:
        if isinstance(data, int | float):
            return cls(value=float(data))
        return cls(value=float(data["value"]), resolution=float(data.get("resolution", 0.0)))


def _latency(name: str, title: str, floor: float, description: str, *, judged: bool = True) -> MetricSpec:
    return MetricSpec(
        name=name, title=title, unit="ms", better="lower", noise_floor=floor, description=description,
        judged=judged,
    )  # fmt: skip


_THROUGH_GATEWAY = "GET /productpage through the ingress gateway (every hop proxied, mTLS)"
_BYPASS = "GET /productpage on a copy of Bookinfo outside the mesh (no sidecars), same kind of address"

CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="gateway_rps",
        title="gateway throughput",
        unit="req/s",
        better="higher",
        noise_floor=2.0,
        description=f"Requests per second achieved, {_THROUGH_GATEWAY}.",
    ),
    _latency("gateway_p50_ms", "gateway p50 latency", 5.0, f"Median latency, {_THROUGH_GATEWAY}."),
    _latency("gateway_p90_ms", "gateway p90 latency", 10.0, f"90th percentile, {_THROUGH_GATEWAY}."),
    _latency("gateway_p99_ms", "gateway p99 latency", 25.0, f"99th percentile, {_THROUGH_GATEWAY}."),
    MetricSpec(
        name="bypass_rps",
        title="bypass throughput (reference)",
        unit="req/s",
        better="higher",
        noise_floor=2.0,
        description=f"Requests per second achieved, {_BYPASS}. A reference, never judged.",
        judged=False,
    ),
    _latency("bypass_p50_ms", "bypass p50 latency (reference)", 5.0, f"Median, {_BYPASS}.", judged=False),
    _latency("bypass_p90_ms", "bypass p90 latency (reference)", 10.0, f"p90, {_BYPASS}.", judged=False),
    _latency("bypass_p99_ms", "bypass p99 latency (reference)", 25.0, f"p99, {_BYPASS}.", judged=False),
    _latency(
        "mesh_added_p50_ms",
        "latency added by the mesh, p50",
        5.0,
        "Gateway p50 minus bypass p50: what the gateway and the sidecars cost a typical request.",
    ),
    _latency(
        "mesh_added_p90_ms",
        "latency added by the mesh, p90",
        10.0,
        "Gateway p90 minus bypass p90.",
    ),
    _latency(
        "mesh_added_p99_ms",
        "latency added by the mesh, p99",
        25.0,
        "Gateway p99 minus bypass p99 (tails are noisy: a wide floor).",
    ),
    MetricSpec(
        name="kiali_lag_s",
        title="Kiali edge lag",
        unit="s",
        better="lower",
        noise_floor=5.0,
        description="From a new client's first request until Kiali's graph shows its edge with traffic.",
    ),
    MetricSpec(
        name="prometheus_lag_s",
        title="Prometheus series lag",
        unit="s",
        better="lower",
        noise_floor=5.0,
        description="From a new client's first request until Prometheus has istio_requests_total for it.",
    ),
    MetricSpec(
        name="convergence_s",
        title="control-plane convergence",
        unit="s",
        better="lower",
        noise_floor=2.0,
        description=(
            "From applying a VirtualService (end-user jason -> reviews v3) until requests through "
            "the gateway follow it."
        ),
    ),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}


def spec_of(name: str) -> MetricSpec:
    """The catalogue entry, or a judged lower-is-better stand-in for a name this version does not
    know (a baseline saved by a newer pytest-meshcheck is still compared, conservatively)."""
    known = BY_NAME.get(name)
    if known is not None:
        return known
    return MetricSpec(name=name, title=name, unit="", better="lower", noise_floor=0.0, description="")


def locust_resolution_ms(value_ms: float) -> float:
    """How coarsely Locust records a latency: 1 ms, 10 ms above 100 ms, 100 ms above 1 s."""
    if not math.isfinite(value_ms) or value_ms < 100:
        return 1.0
    return 10.0 if value_ms < 1000 else 100.0


def format_value(value: float | None, unit: str) -> str:
    """A value as a reader wants it: about 3 significant digits, its unit, "-" when absent."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 100:
        number = f"{value:.0f}"
    elif abs(value) >= 10:
        number = f"{value:.1f}"
    else:
        number = f"{value:.3g}"
    return f"{number} {unit}".strip()
