"""The machine-readable verdict (``meshcheck-summary.json``) and the terminal table.

A CI job should not have to parse Allure results or pytest's exit code to learn whether the mesh
change may ship: it reads ``verdict`` (pass / fail / error) and, when it is not ``pass``, the
listed checks. The collector runs where every test report arrives: the only process without
xdist, the controller with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.report.naming import OTHER_SUITE, suite_from_keywords
from pytest_meshcheck.report.outcomes import Counts, Status, suite_verdict_of, verdict_of, worse
from pytest_meshcheck.report.redact import redact
from pytest_meshcheck.settings import SUITES, Settings

SUMMARY_FILE = "meshcheck-summary.json"
SCHEMA = "meshcheck-summary/1"

#: ``meshcheck_outcome`` / ``meshcheck_facts``: attributes the report plugin puts on test reports.
OUTCOME_ATTR = "meshcheck_outcome"
FACTS_ATTR = "meshcheck_facts"

MAX_MESSAGE = 2000


@dataclass(kw_only=True)
class CheckRecord:
    nodeid: str
    suite: str
    check: str
    status: Status = "passed"
    category: str = ""
    message: str = ""
    duration_s: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "check": self.check,
            "status": self.status,
            "category": self.category,
            "message": self.message,
            "duration_s": round(self.duration_s, 3),
            "figures": self.figures,
            "evidence": self.evidence,
        }


@dataclass(kw_only=True)
class RunFacts:
    versions: dict[str, str] = field(default_factory=dict)
    load: dict[str, Any] | None = None
    upgrade: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, facts: Mapping[str, Any]) -> None:
        self.versions.update(facts.get("versions") or {})
        if facts.get("load"):
            self.load = dict(facts["load"])
        if facts.get("upgrade"):
            self.upgrade = dict(facts["upgrade"])
        if facts.get("benchmark"):
            self.benchmark = dict(facts["benchmark"])


class SummaryCollector:
    """Folds test reports (from this process or from xdist workers) into per-check records."""

    def __init__(self) -> None:
        self.checks: dict[str, CheckRecord] = {}
        self.run_errors: list[dict[str, str]] = []
        self.facts = RunFacts()

    def add_test_report(self, report: pytest.TestReport) -> None:
        record = self.checks.get(report.nodeid)
        if record is None:
            record = CheckRecord(
                nodeid=report.nodeid,
                suite=suite_from_keywords(report.keywords),
                check=_check_from_nodeid(report.nodeid),
            )
            self.checks[report.nodeid] = record
        record.duration_s += report.duration
        status, category, message = _outcome(report)
        new = worse(record.status, status)
        if new != record.status:
            record.status, record.category, record.message = new, category, message
        facts: Mapping[str, Any] = getattr(report, FACTS_ATTR, None) or {}
        record.evidence.extend(facts.get("evidence") or [])
        record.figures.update(facts.get("figures") or {})
        self.facts.merge(facts)

    def add_collect_error(self, report: pytest.CollectReport) -> None:
        self.run_errors.append(
            {"nodeid": report.nodeid, "message": _first_lines(redact(str(report.longrepr)))}
        )

    def add_run_facts(self, facts: Mapping[str, Any]) -> None:
        self.facts.evidence.extend(facts.get("evidence") or [])
        self.facts.merge(facts)

    def counts(self, suite: str | None = None) -> Counts:
        return Counts.of(r.status for r in self.checks.values() if suite is None or r.suite == suite)

    def suites(self) -> list[str]:
        present = {record.suite for record in self.checks.values()}
        return [suite for suite in (*SUITES, OTHER_SUITE) if suite in present]


def _check_from_nodeid(nodeid: str) -> str:
    name = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
    return name.removeprefix("test_").replace("_", " ")


def _first_lines(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _outcome(report: pytest.TestReport) -> tuple[Status, str, str]:
    given = getattr(report, OUTCOME_ATTR, None)
    if isinstance(given, Mapping) and given.get("status") in ("passed", "failed", "broken", "skipped"):
        return given["status"], str(given.get("category", "")), str(given.get("message", ""))
    if report.passed:
        return "passed", "", ""
    if report.skipped:
        return "skipped", "", ""
    status: Status = "failed" if report.when == "call" else "broken"
    return status, "", _first_lines(redact(report.longreprtext))


# --------------------------------------------------------------------------------------------
# The summary document
# --------------------------------------------------------------------------------------------


def versions_of(handle: ClusterHandle | None, recorded: Mapping[str, str]) -> dict[str, str]:
    """Versions from the cluster handle's details (keys naming a version) and those checks saw."""
    versions: dict[str, str] = {}
    if handle is not None:
        for key, value in handle.details.items():
            if "version" in key.lower():
                versions[key.lower().removesuffix("_version").removesuffix("-version")] = value
    versions.update(recorded)
    return versions


@dataclass(frozen=True, kw_only=True)
class RunContext:
    settings: Settings
    handle: ClusterHandle | None
    exit_status: int
    started: str
    finished: str
    duration_s: float
    executor: Mapping[str, Any]
    outputs: Mapping[str, str]


def build_summary(collector: SummaryCollector, context: RunContext) -> dict[str, Any]:
    counts = collector.counts()
    verdict, reason = verdict_of(counts, run_errors=len(collector.run_errors))
    suites: dict[str, Any] = {}
    for suite in collector.suites():
        suite_counts = collector.counts(suite)
        suite_verdict, suite_reason = suite_verdict_of(suite_counts)
        records = [r for r in collector.checks.values() if r.suite == suite]
        figures: dict[str, Any] = {}
        for record in records:
            figures.update(record.figures)
        suites[suite] = {
            "verdict": suite_verdict,
            "reason": suite_reason,
            "counts": suite_counts.to_json(),
            "figures": figures,
            "checks": [record.to_json() for record in records],
        }

    def listed(status: str) -> list[dict[str, str]]:
        return [
            {
                "nodeid": r.nodeid,
                "suite": r.suite,
                "check": r.check,
                "category": r.category,
                "message": r.message,
            }
            for r in collector.checks.values()
            if r.status == status
        ]

    handle = context.handle
    return {
        "schema": SCHEMA,
        "verdict": verdict,
        "reason": reason,
        "started": context.started,
        "finished": context.finished,
        "duration_s": round(context.duration_s, 3),
        "pytest_exit_status": context.exit_status,
        "counts": counts.to_json(),
        "failing_checks": listed("failed"),
        "broken_checks": listed("broken"),
        "run_errors": collector.run_errors,
        "suites": suites,
        "settings": [
            {"name": label, "value": value, "source": source}
            for label, value, source in context.settings.describe()
        ],
        "cluster": None
        if handle is None
        else {
            "provider": handle.provider,
            "name": handle.name,
            "context": handle.context,
            "details": dict(handle.details),
        },
        "versions": versions_of(handle, collector.facts.versions),
        "load": collector.facts.load,
        "upgrade": collector.facts.upgrade,
        "benchmark": collector.facts.benchmark,
        "run_evidence": collector.facts.evidence,
        "ci": dict(context.executor),
        "outputs": dict(context.outputs),
    }


def write_summary(reports_dir: Path, summary: Mapping[str, Any]) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / SUMMARY_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(redact(json.dumps(summary, indent=2)) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------
# Terminal table
# --------------------------------------------------------------------------------------------


def _key_figures(figures: Mapping[str, Mapping[str, Any]], limit: int = 3) -> str:
    shown = []
    for name, figure in list(figures.items())[:limit]:
        value = figure.get("value")
        number = f"{value:.4g}" if isinstance(value, int | float) else str(value)
        shown.append(f"{name} {number}{(' ' + figure['unit']) if figure.get('unit') else ''}")
    return ", ".join(shown)


def table_lines(summary: Mapping[str, Any]) -> list[str]:
    header = ("suite", "passed", "failed", "broken", "skipped", "verdict", "key figures")
    rows: list[Sequence[str]] = [header]
    for suite, data in summary["suites"].items():
        counts = data["counts"]
        rows.append(
            (
                suite,
                str(counts["passed"]),
                str(counts["failed"]),
                str(counts["broken"]),
                str(counts["skipped"]),
                data["verdict"],
                _key_figures(data["figures"]),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(f"verdict: {summary['verdict'].upper()} ({summary['reason']})")
    for key, label in (("failing_checks", "failed"), ("broken_checks", "broken")):
        for check in summary[key]:
            lines.append(f"  {label}: {check['nodeid']} [{check['category'] or 'unclassified'}]")
    for error in summary["run_errors"]:
        lines.append(f"  run error: {error['nodeid'] or '(session)'}")
    return lines
