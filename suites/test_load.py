"""Load suite.

A Locust run through the ingress gateway with the configured users, spawn rate and duration fails
if its error rate exceeds ``--meshcheck-max-error-rate`` or its p95 latency ``--meshcheck-p95-ms``.
It records RPS, p50/p95/p99 and failures by type, and says whether the load was closed-loop.
"""

from __future__ import annotations

import pytest

from pytest_meshcheck.checks.load import attach_load_evidence, budget_findings
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.load import LoadRun, spec_from_settings
from pytest_meshcheck.settings import Settings

pytestmark = pytest.mark.meshcheck_load


def test_load_through_the_gateway_stays_within_budget(
    meshcheck_gateway_url: str, meshcheck_bookinfo: AppInstall, meshcheck_settings: Settings
) -> None:
    spec = spec_from_settings(meshcheck_settings, meshcheck_gateway_url, run_name="load")
    with LoadRun(spec) as run:
        run.wait(timeout=spec.duration_s + 120)
    result = run.result()
    attach_load_evidence(result, name="load", p95_budget_ms=meshcheck_settings.p95_ms)
    findings = budget_findings(result, meshcheck_settings)
    if findings:
        raise CheckFailed(
            f"{result.mode} load of {result.users} users for {result.measured_s:.0f}s: " + "; ".join(findings)
        )
