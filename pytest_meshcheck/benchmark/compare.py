"""Comparing a benchmark run with a saved baseline: which metrics regressed, and what makes the two
runs hard to compare.

Only judged metrics can regress, by the rule in ``metrics`` (worse than the baseline by more than
the tolerance *and* by more than the metric's noise floor and both measurements' resolution).
Differences that do not fail the comparison but change how it should be read are warnings: another
load shape, other versions, a saturated load generator, or the reference app outside the mesh
moving as much as the mesh did (the machine changed, not the mesh).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_meshcheck.benchmark.metrics import (
    CATALOGUE,
    MetricSpec,
    MetricValue,
    format_value,
    spec_of,
)
from pytest_meshcheck.benchmark.record import BenchmarkRecord


class BenchmarkComparisonWarning(UserWarning):
    """Two benchmark runs differ in a way that makes their comparison questionable (not failed)."""


Verdict = Literal["ok", "improved", "regressed", "reference", "not measured", "new"]

#: Environment keys whose difference makes a comparison questionable (warned about, not failed).
COMPARED_ENVIRONMENT = (
    "cluster",
    "provider",
    "kubernetes_version",
    "istio_version",
    "istio_revision",
    "host_cores",
    "lab_faults",
    "load_generator",
)
_SHAPE_FIELDS = ("mode", "users", "workers", "target_rps", "duration_s", "warmup_s", "request")


@dataclass(frozen=True, kw_only=True)
class MetricChange:
    """One row of the before/after table."""

    spec: MetricSpec
    before: MetricValue | None
    after: MetricValue | None
    verdict: Verdict
    #: Signed change relative to the baseline, in percent (None without both values or a 0 baseline).
    change_pct: float | None
    #: The smallest absolute worsening that can count as a regression for this pair.
    floor: float

    def describe(self, tolerance_pct: float) -> str:
        unit = self.spec.unit
        before = format_value(self.before.value if self.before else None, unit)
        after = format_value(self.after.value if self.after else None, unit)
        change = "n/a" if self.change_pct is None else f"{self.change_pct:+.1f}%"
        return (
            f"{self.spec.title}: {before} -> {after} ({change}, tolerance {tolerance_pct:g}%, "
            f"noise floor {format_value(self.floor, unit)}; {self.spec.better} is better)"
        )


@dataclass(frozen=True, kw_only=True)
class Comparison:
    baseline_name: str
    baseline_created: str
    tolerance_pct: float
    changes: tuple[MetricChange, ...]
    warnings: tuple[str, ...]

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        return tuple(change for change in self.changes if change.verdict == "regressed")

    @property
    def ok(self) -> bool:
        return not self.regressions

    def failure_message(self) -> str:
        lines = [
            f"{len(self.regressions)} benchmark metric(s) regressed beyond the {self.tolerance_pct:g}% "
            f"tolerance against baseline {self.baseline_name!r} (saved {self.baseline_created}):"
        ]
        lines += [f"  {change.describe(self.tolerance_pct)}" for change in self.regressions]
        if self.warnings:
            lines.append("read with care:")
            lines += [f"  {warning}" for warning in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_name,
            "baseline_created": self.baseline_created,
            "tolerance_pct": self.tolerance_pct,
            "ok": self.ok,
            "regressed": [change.spec.name for change in self.regressions],
            "warnings": list(self.warnings),
            "metrics": {
                change.spec.name: {
                    "before": None if change.before is None else change.before.value,
                    "after": None if change.after is None else change.after.value,
                    "unit": change.spec.unit,
                    "change_pct": None if change.change_pct is None else round(change.change_pct, 2),
                    "verdict": change.verdict,
                }
                for change in self.changes
            },
        }


def worse_by(spec: MetricSpec, before: float, after: float) -> float:
    """How much worse ``after`` is than ``before`` in the metric's own unit (negative: better)."""
    return after - before if spec.better == "lower" else before - after


def change_percent(before: float, after: float) -> float | None:
    if before == 0 or not (math.isfinite(before) and math.isfinite(after)):
        return None
    return (after - before) / abs(before) * 100.0


def judge(
    spec: MetricSpec, before: MetricValue | None, after: MetricValue | None, tolerance_pct: float
) -> MetricChange:
    """The row for one metric (see the rule in ``benchmark.metrics``)."""
    floor = max(
        spec.noise_floor,
        before.resolution if before else 0.0,
        after.resolution if after else 0.0,
    )
    if before is None or after is None:
        verdict: Verdict = "new" if before is None else "not measured"
        return MetricChange(
            spec=spec, before=before, after=after, verdict=verdict, change_pct=None, floor=floor
        )
    change = change_percent(before.value, after.value)
    worse = worse_by(spec, before.value, after.value)
    beyond_tolerance = worse > tolerance_pct / 100.0 * abs(before.value)
    if not spec.judged:
        verdict = "reference"
    elif worse > floor and beyond_tolerance:
        verdict = "regressed"
    elif -worse > floor and -worse > tolerance_pct / 100.0 * abs(before.value):
        verdict = "improved"
    else:
        verdict = "ok"
    return MetricChange(
        spec=spec, before=before, after=after, verdict=verdict, change_pct=change, floor=floor
    )


def _ordered_names(before: Mapping[str, MetricValue], after: Mapping[str, MetricValue]) -> list[str]:
    known = [spec.name for spec in CATALOGUE if spec.name in before or spec.name in after]
    extra = sorted((set(before) | set(after)) - set(known))
    return known + extra


def _shape_warnings(baseline: BenchmarkRecord, current: BenchmarkRecord) -> list[str]:
    old, new = baseline.load_shape.to_json(), current.load_shape.to_json()
    differences = [
        f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in _SHAPE_FIELDS if old.get(key) != new.get(key)
    ]
    if not differences:
        return []
    return ["the load shape differs from the baseline's: " + "; ".join(differences)]


def _environment_warnings(baseline: BenchmarkRecord, current: BenchmarkRecord) -> list[str]:
    differences = [
        f"{key} {baseline.environment.get(key, '(unset)')!r} -> {current.environment.get(key, '(unset)')!r}"
        for key in COMPARED_ENVIRONMENT
        if baseline.environment.get(key, "") != current.environment.get(key, "")
    ]
    if not differences:
        return []
    return ["the environment or versions differ from the baseline's: " + "; ".join(differences)]


def _generator_warnings(baseline: BenchmarkRecord, current: BenchmarkRecord) -> list[str]:
    warnings = []
    for label, record in (("baseline", baseline), ("this run", current)):
        saturated = sorted(target for target, note in record.generators.items() if note.saturated)
        if saturated:
            warnings.append(
                f"in {label} the load generator was the bottleneck (CPU near 100%) while measuring "
                f"{', '.join(saturated)}: those throughput and latency figures show the generator's "
                "limit, not the mesh's"
            )
    return warnings


def _reference_warnings(changes: list[MetricChange], tolerance_pct: float) -> list[str]:
    moved = [
        change
        for change in changes
        if change.verdict == "reference"
        and change.before is not None
        and change.after is not None
        and abs(worse_by(change.spec, change.before.value, change.after.value)) > change.floor
        and change.change_pct is not None
        and abs(change.change_pct) > tolerance_pct
    ]
    if not moved:
        return []
    listed = ", ".join(f"{c.spec.title} {c.change_pct:+.0f}%" for c in moved if c.change_pct is not None)
    return [
        f"the app outside the mesh changed too ({listed}): the machine or cluster performed "
        "differently (other load, other hardware), so part of any change may not be the mesh's"
    ]


def compare(
    baseline: BenchmarkRecord, current: BenchmarkRecord, *, tolerance_pct: float, baseline_name: str = ""
) -> Comparison:
    """Judge ``current`` against ``baseline``. Comparing a record with itself never regresses."""
    changes = [
        judge(spec_of(name), baseline.metrics.get(name), current.metrics.get(name), tolerance_pct)
        for name in _ordered_names(baseline.metrics, current.metrics)
    ]
    warnings = [
        *_shape_warnings(baseline, current),
        *_environment_warnings(baseline, current),
        *_generator_warnings(baseline, current),
        *_reference_warnings(changes, tolerance_pct),
    ]
    missing = [change.spec.title for change in changes if change.verdict == "not measured"]
    if missing:
        warnings.append(f"not measured in this run, so not compared: {', '.join(missing)}")
    return Comparison(
        baseline_name=baseline_name or baseline.name,
        baseline_created=baseline.created,
        tolerance_pct=tolerance_pct,
        changes=tuple(changes),
        warnings=tuple(warnings),
    )
