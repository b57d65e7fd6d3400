"""Judging a Locust run against the budgets, and turning it into evidence.

Locust is a closed-loop generator (each user waits for its answer before sending the next request),
so the request rate it reaches depends on the latency it measures; the evidence says which mode
ran, and whether the generator itself was the bottleneck.
"""

from __future__ import annotations

from pytest_meshcheck.load.results import LoadResult
from pytest_meshcheck.report import attach_evidence, record_load_figures
from pytest_meshcheck.report.plots import LoadSample, LoadSeries, latency_percentiles_png, throughput_png
from pytest_meshcheck.settings import Settings


def load_series(result: LoadResult, *, title: str, p95_budget_ms: float | None = None) -> LoadSeries:
    if not result.history:
        return LoadSeries(title=title, samples=(), p95_budget_ms=p95_budget_ms)
    start = result.history[0].at
    samples = [
        LoadSample(
            elapsed_s=point.at - start,
            requests_per_s=point.rps,
            failures_per_s=point.failures_per_s,
            p50_ms=point.p50_ms,
            p95_ms=point.p95_ms,
            p99_ms=point.p99_ms,
        )
        for point in result.history
    ]
    return LoadSeries(title=title, samples=samples, p95_budget_ms=p95_budget_ms)


def figures(result: LoadResult) -> dict[str, object]:
    latency = result.latency
    return {
        "mode": result.mode,
        "requests": result.requests,
        "failures": result.failures,
        "error_rate": round(result.error_rate, 6),
        "rps": round(result.rps, 2),
        "p50_ms": latency.p50_ms,
        "p95_ms": latency.p95_ms,
        "p99_ms": latency.p99_ms,
        "generator_saturated": result.generator_saturated,
        "target_rps": result.target_rps,
        "achieved_rps": round(result.achieved_rps, 2),
    }


def attach_load_evidence(result: LoadResult, *, name: str, p95_budget_ms: float | None) -> None:
    """Stats JSON, Locust's CSV and HTML report, and PNG plots of latency and throughput."""
    attach_evidence(f"{name}: Locust result", result.to_dict(), "json")
    artifacts = result.artifacts
    for label, path, kind in (
        ("stats CSV", artifacts.stats_csv, "csv"),
        ("history CSV", artifacts.history_csv, "csv"),
        ("failures CSV", artifacts.failures_csv, "csv"),
        ("HTML report", artifacts.html, "html"),
    ):
        if path is not None and path.exists():
            attach_evidence(f"{name}: Locust {label}", path.read_text(errors="replace"), kind)  # type: ignore[arg-type]
    series = load_series(result, title=f"{name} ({result.mode})", p95_budget_ms=p95_budget_ms)
    if len(series.samples) >= 2:
        attach_evidence(f"{name}: latency percentiles", latency_percentiles_png(series), "png")
        attach_evidence(f"{name}: requests and errors per second", throughput_png(series), "png")
    record_load_figures(figures(result))


def budget_findings(result: LoadResult, settings: Settings) -> list[str]:
    """Where a run broke the error-rate or p95 budget (empty when within both)."""
    findings = []
    if result.requests == 0:
        return [f"no request completed against {result.target_url} in {result.measured_s:.0f}s"]
    if result.error_rate > settings.max_error_rate:
        kinds = "; ".join(
            f"{g.occurrences}x {g.method} {g.name}: {g.error}" for g in result.failures_by_type[:5]
        )
        findings.append(
            f"error rate {result.error_rate:.2%} exceeds the budget of {settings.max_error_rate:.2%} "
            f"({result.failures} of {result.requests} requests failed: {kinds})"
        )
    p95 = result.latency.p95_ms
    if p95 > settings.p95_ms:
        findings.append(f"p95 latency {p95:.0f} ms exceeds the budget of {settings.p95_ms:.0f} ms")
    return findings
