"""``ReportPlugin``: the pytest hooks of the report layer, registered as ``meshcheck-report``.

On every process it classifies outcomes, ships recorded facts on the test reports, redacts the
reports before anyone writes them (terminal, JUnit, Allure) and labels items for Allure. Only the
process that sees every report (no xdist, or the xdist controller) writes the run-level files:
the summary, environment.properties, executor.json and categories.json.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_meshcheck.report import allure as allure_files
from pytest_meshcheck.report.ci import executor_from_env
from pytest_meshcheck.report.evidence import RECORDER
from pytest_meshcheck.report.outcomes import Status, classify_exception
from pytest_meshcheck.report.redact import redact, register_kubeconfig_secrets, scrub_tree
from pytest_meshcheck.report.summary import (
    FACTS_ATTR,
    MAX_MESSAGE,
    OUTCOME_ATTR,
    SUMMARY_FILE,
    RunContext,
    SummaryCollector,
    build_summary,
    table_lines,
    versions_of,
    write_summary,
)

if TYPE_CHECKING:
    from pytest_meshcheck.kube.client import Kube
    from pytest_meshcheck.providers.base import ClusterHandle
    from pytest_meshcheck.settings import Settings

REPORT_PLUGIN_NAME = "meshcheck-report"


class RunState(Protocol):
    """What the report layer reads of the run (``session.MeshcheckSession`` provides it): the
    report sits below the session, so it names what it needs instead of importing it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def provisioned(self) -> bool: ...

    def handle_or_none(self) -> ClusterHandle | None: ...

    def kube(self) -> Kube: ...


@dataclass(frozen=True, kw_only=True)
class ReportPaths:
    reports_dir: Path
    #: Where allure-pytest writes (ours or the user's --alluredir); None when Allure is off.
    allure_dir: Path | None
    evidence_dir: Path
    summary: Path


class ReportPlugin:
    def __init__(self, config: pytest.Config, session: RunState, paths: ReportPaths) -> None:
        self.config = config
        self.session = session
        self.paths = paths
        self.is_worker = hasattr(config, "workerinput")
        self.collector = SummaryCollector()
        self.summary: dict[str, Any] | None = None
        self._started_wall = datetime.now(UTC)
        self._started = time.monotonic()
        self._kubeconfigs_seen: set[Path] = set()

    @property
    def allure_active(self) -> bool:
        return self.paths.allure_dir is not None

    def register_cluster_secrets(self) -> None:
        handle = self.session.handle_or_none()
        if handle is not None and handle.kubeconfig not in self._kubeconfigs_seen:
            self._kubeconfigs_seen.add(handle.kubeconfig)
            register_kubeconfig_secrets(handle.kubeconfig)

    # ----------------------------------------------------------------------------------------
    # Every process
    # ----------------------------------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.config.pluginmanager.get_plugin("allure_listener") is None:
            return
        for item in items:
            allure_files.add_labels(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        RECORDER.begin_test(item.nodeid)
        try:
            return (yield)
        finally:
            RECORDER.end_test()

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        # trylast makes this the innermost wrapper: allure-pytest, JUnit and the terminal all
        # read the report after it has been classified and redacted here.
        report = yield
        self.register_cluster_secrets()
        if call.excinfo is not None and call.when in ("setup", "call"):
            self._attach_failure_evidence(item, call.excinfo.value)
        status, category, message = _classify(report, call)
        setattr(report, OUTCOME_ATTR, {"status": status, "category": category, "message": message})
        facts = RECORDER.take_test_facts()
        if not facts.is_empty():
            setattr(report, FACTS_ATTR, facts.to_json())
        _redact_report(report)
        return report

    def _attach_failure_evidence(self, item: pytest.Item, exc: BaseException) -> None:
        """The error's own evidence (what a timeout saw, tool output), and for a failed check of
        a shipped suite the cluster's side of the story: events, pod status, istio-proxy logs."""
        from pytest_meshcheck.errors import MeshcheckError
        from pytest_meshcheck.report.evidence import attach_evidence

        if isinstance(exc, MeshcheckError):
            for name, text in exc.evidence.items():
                attach_evidence(f"evidence: {name}", text, "text")
        suite = next((m.name for m in item.iter_markers() if m.name.startswith("meshcheck_")), None)
        if suite is None or not isinstance(exc, AssertionError) or not self.session.provisioned:
            return
        try:
            from pytest_meshcheck.kube.diagnostics import collect

            diagnostics = collect(self.session.kube(), self.session.settings.namespace, tail_lines=100)
        except Exception as problem:  # diagnostics must never hide the failure itself
            diagnostics = {"diagnostics": f"could not be collected: {type(problem).__name__}: {problem}"}
        attach_evidence("diagnostics", "\n\n".join(f"== {k}\n{v}" for k, v in diagnostics.items()), "text")

    def pytest_assertrepr_compare(self, op: str, left: object, right: object) -> list[str] | None:
        """pytest shows a failed comparison's operands truncated in the middle, which would print
        a secret's head and tail where ``redact`` no longer recognises it: redact first."""
        shown = [_redacted_repr(left), _redacted_repr(right)]
        if shown == [_plain_repr(left), _plain_repr(right)]:
            return None
        return [f"{shown[0]} {op} {shown[1]}", "(operands redacted: they contained a secret of this run)"]

    # ----------------------------------------------------------------------------------------
    # The process that sees every report
    # ----------------------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            self.collector.add_test_report(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not self.is_worker and report.failed:
            self.collector.add_collect_error(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        self.register_cluster_secrets()
        self.collector.add_run_facts(RECORDER.take_run_facts().to_json())
        if self.config.option.collectonly:
            return
        handle = self.session.handle_or_none()
        executor = executor_from_env()
        finished = datetime.now(UTC)
        outputs = {"summary": str(self.paths.summary), "evidence": str(self.paths.evidence_dir)}
        if self.paths.allure_dir is not None:
            outputs["allure_results"] = str(self.paths.allure_dir)
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if xmlpath:
            outputs["junitxml"] = str(Path(xmlpath).resolve())
        context = RunContext(
            settings=self.session.settings,
            handle=handle,
            exit_status=int(exitstatus),
            started=self._started_wall.isoformat(timespec="seconds"),
            finished=finished.isoformat(timespec="seconds"),
            duration_s=time.monotonic() - self._started,
            executor=executor,
            outputs=outputs,
        )
        self.summary = build_summary(self.collector, context)
        write_summary(self.paths.reports_dir, self.summary)
        if self.paths.allure_dir is not None:
            versions = versions_of(handle, self.collector.facts.versions)
            entries = allure_files.environment_entries(self.session.settings, handle, versions)
            allure_files.write_environment(self.paths.allure_dir, entries)
            allure_files.write_json(self.paths.allure_dir / "executor.json", executor)
            allure_files.write_json(self.paths.allure_dir / "categories.json", allure_files.categories())

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker or self.summary is None:
            return
        terminalreporter.section("meshcheck")
        for line in table_lines(self.summary):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"summary: {self.paths.summary}")

    # ----------------------------------------------------------------------------------------
    # Last line of defence: whatever was written without going through ``redact``
    # ----------------------------------------------------------------------------------------

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.register_cluster_secrets()
        targets = [self.paths.evidence_dir]
        if self.paths.allure_dir is not None:
            targets.append(self.paths.allure_dir)
        if not self.is_worker:
            targets.append(self.paths.reports_dir)
            xmlpath = getattr(config.option, "xmlpath", None)
            if xmlpath:
                targets.append(Path(xmlpath))
        result = scrub_tree(dict.fromkeys(targets))
        for path in result.removed:
            sys.stderr.write(f"meshcheck: removed {path}: it contained a secret and is not text\n")


def _classify(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[Status, str, str]:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        return "skipped", "", redact(str(getattr(report, "wasxfail", "") or reason))
    if report.passed:
        return "passed", "", ""
    if call.excinfo is None:
        status: Status = "failed" if report.when == "call" else "broken"
        return status, "", ""
    status, category = classify_exception(call.excinfo.value)
    message = redact(call.excinfo.exconly())
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return status, category, message


REPR_LIMIT = 240


def _plain_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the assertion itself
        return f"<{type(value).__name__} with a failing repr>"


def _redacted_repr(value: object) -> str:
    text = redact(_plain_repr(value))
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


def _redact_report(report: pytest.TestReport) -> None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        report.longrepr = (longrepr[0], longrepr[1], redact(longrepr[2]))
    elif longrepr is not None:
        text = report.longreprtext
        clean = redact(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redact(content)) for title, content in report.sections]


__all__ = ["REPORT_PLUGIN_NAME", "SUMMARY_FILE", "ReportPaths", "ReportPlugin"]
