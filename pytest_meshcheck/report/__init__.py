"""The report layer: Allure results and evidence, the JSON verdict, the terminal summary, plots,
redaction and the ``meshcheck report`` commands (see docs/architecture.md and docs/ci.md).

Checks use the recording API re-exported here; the main plugin calls ``configure_reports``.
"""

from __future__ import annotations

from pytest_meshcheck.report.evidence import (
    EvidenceRecord,
    attach_evidence,
    describe_check,
    record_benchmark_result,
    record_figure,
    record_load_figures,
    record_upgrade_result,
    record_version,
    reports_dir,
)
from pytest_meshcheck.report.redact import redact, register_secret
from pytest_meshcheck.report.setup import configure_reports

__all__ = [
    "EvidenceRecord",
    "attach_evidence",
    "configure_reports",
    "describe_check",
    "record_benchmark_result",
    "record_figure",
    "record_load_figures",
    "record_upgrade_result",
    "record_version",
    "redact",
    "register_secret",
    "reports_dir",
]
