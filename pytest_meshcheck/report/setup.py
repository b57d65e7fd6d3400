"""``configure_reports``: called by the main plugin's ``pytest_configure`` when --meshcheck is on.

It must run before allure-pytest's own ``pytest_configure`` so the results directory it picks
(``<reports-dir>/allure-results`` unless the user passed ``--alluredir``) is the one allure-pytest
opens. The controller clears what a previous run left in the directories it owns, before any
xdist worker starts writing, so a stale verdict or result can never be mistaken for this run's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_meshcheck.report.allure import install_result_redaction
from pytest_meshcheck.report.evidence import RECORDER
from pytest_meshcheck.report.plugin import REPORT_PLUGIN_NAME, ReportPaths, ReportPlugin, RunState
from pytest_meshcheck.report.redact import register_environment_secrets
from pytest_meshcheck.report.summary import SUMMARY_FILE

ALLURE_RESULTS_DIR = "allure-results"
EVIDENCE_DIR = "evidence"


def reports_dir_of(config: pytest.Config, session: RunState) -> Path:
    """The reports dir; a relative one is taken from where pytest was invoked, like --junitxml."""
    return (config.invocation_params.dir / session.settings.reports_dir).resolve()


def configure_reports(config: pytest.Config, session: RunState) -> ReportPlugin:
    existing = config.pluginmanager.get_plugin(REPORT_PLUGIN_NAME)
    if isinstance(existing, ReportPlugin):
        return existing
    is_worker = hasattr(config, "workerinput")
    owns_files = not is_worker and not config.option.collectonly
    reports_dir = reports_dir_of(config, session)

    allure_installed = hasattr(config.option, "allure_report_dir")
    allure_dir: Path | None = None
    if allure_installed:
        given = config.option.allure_report_dir
        if given:
            allure_dir = Path(given).resolve()
        else:
            allure_dir = reports_dir / ALLURE_RESULTS_DIR
            config.option.allure_report_dir = str(allure_dir)
            if owns_files:
                # Ours alone, so cleared per run; a user's --alluredir is left as they manage it.
                shutil.rmtree(allure_dir, ignore_errors=True)
    evidence_dir = reports_dir / EVIDENCE_DIR
    summary = reports_dir / SUMMARY_FILE
    if owns_files:
        shutil.rmtree(evidence_dir, ignore_errors=True)
        summary.unlink(missing_ok=True)

    register_environment_secrets()
    workerinput = getattr(config, "workerinput", {})
    RECORDER.configure(
        reports_dir=reports_dir,
        allure_active=allure_dir is not None,
        writer_id=str(workerinput.get("workerid", "main")),
    )
    paths = ReportPaths(
        reports_dir=reports_dir, allure_dir=allure_dir, evidence_dir=evidence_dir, summary=summary
    )
    plugin = ReportPlugin(config, session, paths)
    config.pluginmanager.register(plugin, REPORT_PLUGIN_NAME)
    if allure_installed:
        install_result_redaction(config)
    return plugin
