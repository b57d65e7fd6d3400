"""The benchmark as tables a person reads: plain text (terminal, failure message, Allure text
attachment) and a small self-contained HTML page (Allure renders HTML attachments inline).

Every row names the metric in words, with its unit and which direction is better, so a reader
of the report does not need this project's source to understand it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from pytest_meshcheck.benchmark.compare import Comparison
from pytest_meshcheck.benchmark.metrics import format_value, spec_of
from pytest_meshcheck.benchmark.record import BenchmarkRecord

_VERDICT_COLOUR = {
    "regressed": "#c62828",
    "improved": "#2e7d32",
    "ok": "#37474f",
    "reference": "#757575",
    "not measured": "#ef6c00",
    "new": "#1565c0",
}


def _text_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _context_lines(record: BenchmarkRecord) -> list[str]:
    lines = [f"load: {record.load_shape.describe()} ({record.load_shape.mode})"]
    environment = ", ".join(f"{key}={value}" for key, value in record.environment.items() if value)
    lines.append(f"environment: {environment}")
    for target, note in record.generators.items():
        busy = "not sampled" if note.busiest_share is None else f"{note.busiest_share:.0%} of a core"
        flag = "  <- GENERATOR SATURATED: figures show the generator's limit" if note.saturated else ""
        lines.append(
            f"generator ({target}): {note.requests} requests, {note.failures} failed, "
            f"busiest process {busy}{flag}"
        )
    lines += [f"note: {note}" for note in record.notes]
    return lines


def results_text(record: BenchmarkRecord) -> str:
    """This run's metrics, without a baseline."""
    rows: list[Sequence[str]] = [("metric", "value", "better", "what it measures")]
    for name, value in record.metrics.items():
        spec = spec_of(name)
        rows.append((spec.title, format_value(value.value, spec.unit), spec.better, spec.description))
    return "\n".join([_text_table(rows), "", *_context_lines(record)]) + "\n"


def comparison_text(comparison: Comparison, current: BenchmarkRecord) -> str:
    """Before/after, one metric a row, with the change and the verdict."""
    rows: list[Sequence[str]] = [("metric", "before", "after", "change", "verdict", "better")]
    for change in comparison.changes:
        unit = change.spec.unit
        rows.append(
            (
                change.spec.title,
                format_value(change.before.value if change.before else None, unit),
                format_value(change.after.value if change.after else None, unit),
                "n/a" if change.change_pct is None else f"{change.change_pct:+.1f}%",
                change.verdict.upper() if change.verdict == "regressed" else change.verdict,
                change.spec.better,
            )
        )
    head = (
        f"baseline {comparison.baseline_name!r} (saved {comparison.baseline_created}) vs this run; "
        f"tolerance {comparison.tolerance_pct:g}% per metric, beyond each metric's noise floor"
    )
    lines = [head, "", _text_table(rows), ""]
    lines += [f"warning: {warning}" for warning in comparison.warnings]
    lines += ["", "this run:", *_context_lines(current)]
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
    "td,th{border:1px solid #cfd8dc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child,td.text{text-align:left}th{background:#eceff1}"
    ".warn{color:#ef6c00}.sat{color:#c62828;font-weight:bold}"
)


def _html_page(title: str, body: list[str]) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
        + "".join(body)
        + "</body></html>\n"
    )


def _context_html(record: BenchmarkRecord) -> list[str]:
    items = []
    for line in _context_lines(record):
        css = " class='sat'" if "SATURATED" in line else ""
        items.append(f"<li{css}>{html.escape(line)}</li>")
    return ["<ul>", *items, "</ul>"]


def results_html(record: BenchmarkRecord) -> str:
    rows = ["<table><tr><th>metric</th><th>value</th><th>better</th><th>what it measures</th></tr>"]
    for name, value in record.metrics.items():
        spec = spec_of(name)
        rows.append(
            f"<tr><td>{html.escape(spec.title)}</td>"
            f"<td>{html.escape(format_value(value.value, spec.unit))}</td>"
            f"<td>{spec.better}</td><td class='text'>{html.escape(spec.description)}</td></tr>"
        )
    rows.append("</table>")
    return _html_page("benchmark results", [*rows, *_context_html(record)])


def comparison_html(comparison: Comparison, current: BenchmarkRecord) -> str:
    rows = [
        "<table><tr><th>metric</th><th>before</th><th>after</th><th>change</th><th>verdict</th>"
        "<th>better</th><th>noise floor</th></tr>"
    ]
    for change in comparison.changes:
        unit = change.spec.unit
        colour = _VERDICT_COLOUR.get(change.verdict, "#000")
        cells = (
            format_value(change.before.value if change.before else None, unit),
            format_value(change.after.value if change.after else None, unit),
            "n/a" if change.change_pct is None else f"{change.change_pct:+.1f}%",
        )
        rows.append(
            f"<tr title='{html.escape(change.spec.description)}'><td>{html.escape(change.spec.title)}</td>"
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f"<td style='color:{colour};font-weight:bold'>{change.verdict}</td>"
            f"<td>{change.spec.better}</td><td>{html.escape(format_value(change.floor, unit))}</td></tr>"
        )
    rows.append("</table>")
    warnings = [f"<p class='warn'>warning: {html.escape(w)}</p>" for w in comparison.warnings]
    title = (
        f"benchmark vs baseline {comparison.baseline_name!r} "
        f"(tolerance {comparison.tolerance_pct:g}%, saved {comparison.baseline_created})"
    )
    return _html_page(title, [*rows, *warnings, "<p>this run:</p>", *_context_html(current)])
