"""Load suite.

A Locust run through the ingress gateway with the configured users, spawn rate and duration fails
if its error rate exceeds ``--meshcheck-max-error-rate`` or its p95 latency ``--meshcheck-p95-ms``.
It records RPS, p50/p95/p99 and failures by type, and says whether the load was closed-loop and
where it came from (this machine, or Jobs in the cluster with ``--meshcheck-load-in-cluster``).
"""

from __future__ import annotations

import pytest

from pytest_meshcheck.checks.load import attach_load_evidence, budget_findings
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.load import load_run
from pytest_meshcheck.settings import Settings

pytestmark = pytest.mark.meshcheck_load


def test_load_through_the_gateway_stays_within_budget(
    meshcheck_gateway_url: str,
    meshcheck_bookinfo: AppInstall,
    meshcheck_settings: Settings,
    meshcheck_kube: Kube,
) -> None:
    # Local processes, or Jobs next to the gateway with --meshcheck-load-in-cluster.
    run = load_run(meshcheck_settings, meshcheck_gateway_url, kube=meshcheck_kube, run_name="load")
    with run:
        run.wait(timeout=run.default_timeout())
    result = run.result()
    attach_load_evidence(result, name="load", p95_budget_ms=meshcheck_settings.p95_ms)
    findings = budget_findings(result, meshcheck_settings)
    if findings:
        raise CheckFailed(
            f"{result.mode} load of {result.users} users for {result.measured_s:.0f}s from {result.origin}: "
            + "; ".join(findings)
        )
