"""Reading Locust's output files into the typed pieces of a ``LoadResult``.

Locust rewrites its ``_stats.csv`` and ``_failures.csv`` on a one-second timer that stops before the
last requests are counted, so a run of a few seconds can under-report by a third. The final
numbers come from what Locust writes as it quits: ``--json-file`` (per-endpoint stats with latency
histograms, from which the aggregated row is rebuilt exactly as Locust builds it) and our report
plugin's ``final-*.json`` (failures and exceptions). The CSV files are the fallback for output
produced elsewhere (another machine) and the source of the stats history. A pod has no files the
harness can read: its process prints the same report into its log (``reports_in_log``), with
Locust's stats, its stats history in the history CSV's columns (``write_history_csv``) and its
CPU time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.cpu import CpuSample
from pytest_meshcheck.load.results import (
    EndpointStats,
    FailureEvent,
    FailureGroup,
    HistoryPoint,
    Latency,
    LocustException,
    TimelineSecond,
)

AGGREGATED = "Aggregated"


@dataclass(frozen=True, kw_only=True)
class StatsTable:
    """Per-endpoint rows, the aggregated row and the time they cover.

    ``first_at``/``last_at`` bound the requests in Unix seconds where the source records them.
    """

    endpoints: tuple[EndpointStats, ...]
    total: EndpointStats
    measured_s: float
    first_at: float | None = None
    last_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class FinalAccount:
    """One Locust process's final report written by our report plugin (``final-<generator>.json``).

    ``timeline`` and ``failure_events`` are this process's own (None on the master, which makes
    no requests, and in reports of plugin versions that did not record them). ``cpu`` is the
    process's cumulative CPU time sampled while it ran, where it reported it itself (a pod).
    """

    generator: str
    role: str
    requests_made: int | None
    failures_made: int | None
    errors: tuple[FailureGroup, ...] | None
    exceptions: tuple[LocustException, ...] | None
    timeline: tuple[TimelineSecond, ...] | None = None
    failure_events: tuple[FailureEvent, ...] | None = None
    failure_events_dropped: int = 0
    cpu: tuple[CpuSample, ...] | None = None


def percentile_ms(histogram: Mapping[int, int], count: int, share: float) -> float:
    """The latency ``share`` of ``count`` requests finished within, with Locust's rule.

    Locust answers with the slowest bucket that at most ``int(count * share)`` requests are faster
    than; matching it keeps our aggregate identical to the one Locust prints.
    """
    allowed_below = int(count * share)
    chosen = 0
    below = 0
    for bucket in sorted(histogram):
        if below > allowed_below:
            break
        chosen = bucket
        below += histogram[bucket]
    return float(chosen)


# -- --json-file ---------------------------------------------------------------------------------


def _entry_row(
    method: str,
    name: str,
    entries: Sequence[Mapping[str, Any]],
    window_s: float,
) -> EndpointStats:
    histogram: dict[int, int] = {}
    for entry in entries:
        for bucket, hits in entry["response_times"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + int(hits)
    requests = sum(int(e["num_requests"]) for e in entries)
    timed = requests - sum(int(e.get("num_none_requests", 0)) for e in entries)
    minimums = [float(e["min_response_time"]) for e in entries if e.get("min_response_time") is not None]
    latency = Latency(
        avg_ms=sum(float(e["total_response_time"]) for e in entries) / timed if timed else 0.0,
        min_ms=min(minimums) if minimums else 0.0,
        max_ms=max((float(e["max_response_time"]) for e in entries), default=0.0),
        p50_ms=percentile_ms(histogram, timed, 0.50),
        p90_ms=percentile_ms(histogram, timed, 0.90),
        p95_ms=percentile_ms(histogram, timed, 0.95),
        p99_ms=percentile_ms(histogram, timed, 0.99),
    )
    return EndpointStats(
        method=method,
        name=name,
        requests=requests,
        failures=sum(int(e["num_failures"]) for e in entries),
        rps=requests / window_s if window_s > 0 else 0.0,
        latency=latency,
        avg_content_bytes=sum(float(e["total_content_length"]) for e in entries) / requests
        if requests
        else 0.0,
    )


def stats_from_json(path: Path) -> StatsTable:
    """Locust's ``--json-file`` output: a list of per-endpoint entries with histograms."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"could not read Locust's JSON stats {path}: {exc}") from exc
    return stats_from_entries(entries, source=str(path))


def stats_from_entries(entries: Any, *, source: str) -> StatsTable:
    """Locust's serialized per-endpoint stats (its JSON file, or our report plugin's ``stats``)."""
    if not isinstance(entries, list):
        raise LoadError(f"Locust's JSON stats {source} is not a list of entries")
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    ends = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    first_at, last_at = (min(starts), max(ends)) if starts and ends else (None, None)
    window = last_at - first_at if first_at is not None and last_at is not None else 0.0
    endpoints = tuple(
        _entry_row(str(e["method"] or ""), str(e["name"]), [e], window)
        for e in sorted(entries, key=lambda e: (str(e["name"]), str(e["method"] or "")))
    )
    total = _entry_row("", AGGREGATED, entries, window)
    return StatsTable(endpoints=endpoints, total=total, measured_s=window, first_at=first_at, last_at=last_at)


# -- CSV files ------------------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            yield from csv.DictReader(handle)
    except OSError as exc:
        raise LoadError(f"could not read Locust output {path}: {exc}") from exc


def _number(text: str | None) -> float:
    """Locust writes ``N/A`` for percentiles of an empty window."""
    if text is None or text.strip() in ("", "N/A"):
        return 0.0
    return float(text)


def _optional_number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "N/A"):
        return None
    return float(text)


def _row_stats(row: Mapping[str, str]) -> EndpointStats:
    return EndpointStats(
        method=row.get("Type", "") or "",
        name=row["Name"],
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        rps=_number(row.get("Requests/s")),
        avg_content_bytes=_number(row.get("Average Content Size")),
        latency=Latency(
            avg_ms=_number(row.get("Average Response Time")),
            min_ms=_number(row.get("Min Response Time")),
            max_ms=_number(row.get("Max Response Time")),
            p50_ms=_number(row.get("50%")),
            p90_ms=_number(row.get("90%")),
            p95_ms=_number(row.get("95%")),
            p99_ms=_number(row.get("99%")),
        ),
    )


def stats_from_csv(path: Path) -> StatsTable:
    """``<prefix>_stats.csv``: one row per endpoint, then the ``Aggregated`` row."""
    endpoints: list[EndpointStats] = []
    total: EndpointStats | None = None
    try:
        for row in _rows(path):
            stats = _row_stats(row)
            if stats.name == AGGREGATED and not stats.method:
                total = stats
            else:
                endpoints.append(stats)
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not look like Locust's stats CSV: {exc!r}") from exc
    if total is None:
        raise LoadError(f"{path} has no {AGGREGATED} row: the run ended before Locust wrote its stats")
    measured = total.requests / total.rps if total.rps else 0.0
    return StatsTable(endpoints=tuple(endpoints), total=total, measured_s=measured)


def history_from_csv(path: Path) -> tuple[HistoryPoint, ...]:
    """The aggregated rows of ``<prefix>_stats_history.csv`` (per-endpoint rows are skipped)."""
    points = []
    try:
        for row in _rows(path):
            if row.get("Name") != AGGREGATED:
                continue
            points.append(
                HistoryPoint(
                    at=float(row["Timestamp"]),
                    users=int(row["User Count"]),
                    rps=_number(row.get("Requests/s")),
                    failures_per_s=_number(row.get("Failures/s")),
                    p50_ms=_optional_number(row.get("50%")),
                    p95_ms=_optional_number(row.get("95%")),
                    p99_ms=_optional_number(row.get("99%")),
                    total_requests=int(row["Total Request Count"]),
                    total_failures=int(row["Total Failure Count"]),
                )
            )
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not look like Locust's stats history CSV: {exc!r}") from exc
    return tuple(points)


def failures_from_csv(path: Path) -> tuple[FailureGroup, ...]:
    """``<prefix>_failures.csv``: Method, Name, Error, Occurrences (and, newer, First/Last Seen)."""
    try:
        return _sorted_failures(
            FailureGroup(
                method=row["Method"],
                name=row["Name"],
                error=row["Error"],
                occurrences=int(row["Occurrences"]),
            )
            for row in _rows(path)
        )
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not look like Locust's failures CSV: {exc!r}") from exc


def exceptions_from_csv(path: Path) -> tuple[LocustException, ...]:
    """``<prefix>_exceptions.csv``: Count, Message, Traceback, Nodes (comma separated)."""
    try:
        return tuple(
            LocustException(
                count=int(row["Count"]),
                message=row["Message"],
                traceback=row["Traceback"],
                nodes=tuple(node.strip() for node in row["Nodes"].split(",") if node.strip()),
            )
            for row in _rows(path)
        )
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not look like Locust's exceptions CSV: {exc!r}") from exc


def _sorted_failures(groups: Iterable[FailureGroup]) -> tuple[FailureGroup, ...]:
    return tuple(sorted(groups, key=lambda g: (-g.occurrences, g.name, g.method, g.error)))


# -- our report plugin ----------------------------------------------------------------------------


def final_account(path: Path) -> FinalAccount:
    """Read one ``final-<generator>.json``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"could not read the final account {path}: {exc!r}") from exc
    return account_from_report(data, source=str(path))


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def account_from_report(data: Any, *, source: str) -> FinalAccount:
    """A final account from the report plugin's JSON, wherever it was read (file or pod log)."""
    try:
        errors = data.get("errors")
        exceptions = data.get("exceptions")
        timeline = data.get("timeline")
        events = data.get("failure_events")
        cpu = data.get("cpu")
        return FinalAccount(
            generator=str(data["generator"]),
            role=str(data["role"]),
            requests_made=_optional_int(data.get("requests_made")),
            failures_made=_optional_int(data.get("failures_made")),
            errors=None
            if errors is None
            else _sorted_failures(
                FailureGroup(
                    method=str(e["method"] or ""),
                    name=str(e["name"]),
                    error=str(e["error"]),
                    occurrences=int(e["occurrences"]),
                )
                for e in errors
            ),
            exceptions=None
            if exceptions is None
            else tuple(
                LocustException(
                    count=int(e["count"]),
                    message=str(e["msg"]),
                    traceback=str(e["traceback"]),
                    nodes=tuple(str(node) for node in e["nodes"]),
                )
                for e in exceptions
            ),
            timeline=None
            if timeline is None
            else tuple(
                TimelineSecond(at=int(at), requests=int(requests), failures=int(failures))
                for at, requests, failures in timeline
            ),
            failure_events=None
            if events is None
            else tuple(
                FailureEvent(at=float(at), name=str(name), method=str(method or ""), error=str(error))
                for at, name, method, error in events
            ),
            failure_events_dropped=int(data.get("failure_events_dropped") or 0),
            cpu=None
            if cpu is None
            else tuple(sorted((CpuSample(at=float(at), cpu_s=float(cpu_s)) for at, cpu_s in cpu), key=_at)),
        )
    except (AttributeError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"could not read the final account {source}: {exc!r}") from exc


def _at(sample: CpuSample) -> float:
    return sample.at


def write_history_csv(report: Mapping[str, Any], path: Path, *, source: str) -> bool:
    """Write the stats history a printed report carries as Locust's ``_stats_history.csv``.

    The report plugin samples the rows Locust's CSV writer would append (a pod has no file the
    harness could read), so the history is read back by ``history_from_csv`` as a local run's is.
    False when the report carries no history.
    """
    columns, rows = report.get("history_columns"), report.get("history")
    if columns is None or rows is None:
        return False
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise LoadError(f"the stats history in {source} is not a list of rows under a list of columns")
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns):
            raise LoadError(f"the stats history in {source} has a row that does not fit its columns: {row!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(["" if value is None else value for value in row] for row in rows)
    return True


#: The lines framing a report the plugin printed to stdout (``_meshcheck_report.STDOUT_BEGIN``).
REPORT_BEGIN = "=== meshcheck final report begin ==="
REPORT_END = "=== meshcheck final report end ==="


def reports_in_log(text: str, *, source: str) -> list[dict[str, Any]]:
    """The final reports our plugin printed into a log (a pod's, when no file can be read back)."""
    reports = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != REPORT_BEGIN:
            continue
        if index + 2 >= len(lines) or lines[index + 2].strip() != REPORT_END:
            raise LoadError(f"the final report in {source} is cut off (the log ends inside it)")
        try:
            report = json.loads(lines[index + 1])
        except ValueError as exc:
            raise LoadError(f"the final report in {source} is not JSON: {exc}") from exc
        if not isinstance(report, dict):
            raise LoadError(f"the final report in {source} is not a JSON object")
        reports.append(report)
    return reports
