"""The benchmark in the report: Allure attachments a person can read without this project's
source, key figures for the terminal table, and the ``benchmark`` section of the summary.

The check's Allure description becomes the results table (or, when comparing, the before/after
table), so the numbers are the first thing on the check's page rather than one attachment among
many.

Attachment names start with what they show ("benchmark: before/after table") so they sort
together in Allure; tables come as text and HTML, figures as PNG, the record itself as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.benchmark.compare import Comparison
from pytest_meshcheck.benchmark.load_shapes import TargetMeasurement
from pytest_meshcheck.benchmark.metrics import BY_NAME, spec_of
from pytest_meshcheck.benchmark.record import BenchmarkRecord
from pytest_meshcheck.benchmark.table import comparison_html, comparison_text, results_html, results_text
from pytest_meshcheck.checks.load import figures as load_figures
from pytest_meshcheck.checks.load import load_series
from pytest_meshcheck.report import attach_evidence, describe_check, record_figure
from pytest_meshcheck.report.plots import (
    BarGroup,
    BeforeAfter,
    before_after_png,
    grouped_bars_png,
    latency_percentiles_png,
)

#: Figures shown in the terminal table (it shows a suite's first three).
KEY_FIGURES = ("gateway_p50_ms", "mesh_added_p50_ms", "convergence_s", "gateway_rps", "kiali_lag_s")


def attach_target(measured: TargetMeasurement) -> None:
    """One target's Locust figures and its latency over time."""
    name = f"benchmark: {measured.label} load"
    attach_evidence(f"{name} (Locust figures)", load_figures(measured.result), "json")
    series = load_series(measured.result, title=f"{name}, {measured.result.mode}")
    if len(series.samples) >= 2:
        attach_evidence(f"{name}: latency over time", latency_percentiles_png(series), "png")


def attach_results(record: BenchmarkRecord) -> None:
    """The record (JSON), its table (text, HTML), mesh-vs-bypass percentiles, key figures."""
    attach_evidence("benchmark: results table", results_text(record), "text")
    attach_evidence("benchmark: results table (HTML)", results_html(record), "html")
    describe_check(results_html(record))
    attach_evidence("benchmark: results (JSON)", record.to_json(), "json")
    groups = [
        BarGroup(
            label=label,
            values={
                p: record.metrics[f"{prefix}_{p}_ms"].value
                for p in ("p50", "p90", "p99")
                if f"{prefix}_{p}_ms" in record.metrics
            },
        )
        for label, prefix in (
            ("through the mesh (gateway)", "gateway"),
            ("outside the mesh (bypass)", "bypass"),
        )
    ]
    if all(group.values for group in groups):
        title = f"/productpage latency, {record.load_shape.mode}, {record.load_shape.users} users"
        attach_evidence(
            "benchmark: mesh vs bypass latency", grouped_bars_png(title, groups, unit="ms"), "png"
        )
    for name in KEY_FIGURES:
        if name in record.metrics:
            spec = BY_NAME[name]
            record_figure(spec.title, record.metrics[name].value, spec.unit)


def attach_comparison(comparison: Comparison, current: BenchmarkRecord) -> None:
    """The before/after table (text, HTML) and one before/after panel per metric."""
    attach_evidence("benchmark: before/after table", comparison_text(comparison, current), "text")
    attach_evidence("benchmark: before/after table (HTML)", comparison_html(comparison, current), "html")
    describe_check(comparison_html(comparison, current))
    rows = [
        BeforeAfter(
            title=change.spec.title,
            unit=change.spec.unit,
            before=None if change.before is None else change.before.value,
            after=None if change.after is None else change.after.value,
            regressed=change.verdict == "regressed",
            better=change.spec.better,
        )
        for change in comparison.changes
    ]
    if rows:
        title = (
            f"baseline {comparison.baseline_name!r} vs this run "
            f"(red: regressed beyond {comparison.tolerance_pct:g}%)"
        )
        attach_evidence("benchmark: before/after", before_after_png(title, rows), "png")


def summary_section(
    record: BenchmarkRecord,
    *,
    saved_as: str = "",
    saved_to: str = "",
    comparison: Comparison | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``benchmark`` section of meshcheck-summary.json."""
    section: dict[str, Any] = {
        "created": record.created,
        "load_shape": record.load_shape.to_json(),
        "environment": dict(record.environment),
        "generator_saturated": record.generator_saturated,
        "generators": {target: note.to_json() for target, note in record.generators.items()},
        "metrics": {
            name: {
                "value": value.value,
                "unit": spec_of(name).unit,
                "better": spec_of(name).better,
                "resolution": value.resolution,
            }
            for name, value in record.metrics.items()
        },
        "notes": list(record.notes),
        "saved_as": saved_as or None,
        "saved_to": saved_to or None,
        "comparison": None if comparison is None else comparison.to_json(),
    }
    section.update(extra or {})
    return section
