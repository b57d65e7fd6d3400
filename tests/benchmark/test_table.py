"""The tables a person reads in the terminal, the failure message and Allure."""

from __future__ import annotations

from pytest_meshcheck.benchmark.compare import compare
from pytest_meshcheck.benchmark.table import comparison_html, comparison_text, results_html, results_text

from .records import changed, record


def test_results_text_names_metrics_in_words_with_units_and_direction() -> None:
    text = results_text(record(saturated=True))
    assert "gateway p50 latency" in text
    assert "40.0 ms" in text
    assert "Kiali edge lag" in text
    assert "11.0 s" in text
    assert "latency added by the mesh, p90" in text
    assert "lower" in text and "higher" in text
    assert (
        "load: 5 users (closed loop), 20s measured after 5s warm-up, GET /productpage (closed-loop)" in text
    )
    assert "GENERATOR SATURATED" in text
    assert "istio_version=1.30.3" in text


def test_comparison_text_has_before_after_change_and_verdict_per_metric() -> None:
    current = record(changed(gateway_p50_ms=440.0))
    comparison = compare(record(), current, tolerance_pct=25.0, baseline_name="base")
    text = comparison_text(comparison, current)
    line = next(line for line in text.splitlines() if line.startswith("gateway p50 latency"))
    assert line.split() == [
        "gateway",
        "p50",
        "latency",
        "40.0",
        "ms",
        "440",
        "ms",
        "+1000.0%",
        "REGRESSED",
        "lower",
    ]
    assert "baseline 'base' (saved 2025-01-01T00:00:00+00:00) vs this run; tolerance 25%" in text
    assert "reference" in text


def test_html_tables_are_escaped_and_colour_the_verdicts() -> None:
    current = record(changed(gateway_p50_ms=440.0))
    comparison = compare(record(), current, tolerance_pct=25.0, baseline_name="<b>")
    page = comparison_html(comparison, current)
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "color:#c62828;font-weight:bold'>regressed" in page
    assert "<td>+1000.0%</td>" in page
    assert "gateway p50 latency" in results_html(current)
