"""Upgrade gate suite: traffic survives an Istio upgrade within the error budget.

With ``--meshcheck-upgrade-to=V`` the run installs ``--meshcheck-istio-version`` as usual, checks
that this mesh is healthy (the gate must not blame the upgrade for what was broken before), runs a
precheck, then upgrades to V with ``--meshcheck-upgrade-strategy`` while Locust sends traffic
through the gateway. The gate fails when the error rate of that window exceeds
``--meshcheck-upgrade-error-budget`` (failed requests are reported by second and by the step that
was running), or when the mesh after the upgrade is not what it should be: every proxy on V and
connected to the new revision, no pod left on the old one, the new webhook injecting new pods,
gateway, mTLS and Kiali's graph passing again, and (canary) the old revision's objects gone.

The whole gate is one test: its steps change the cluster in order, and under pytest-xdist one
test is the unit that is never split across workers.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from pytest_meshcheck.checks.graph import load_expected_graph, observe_graph
from pytest_meshcheck.checks.kiali import KialiClient
from pytest_meshcheck.checks.load import attach_load_evidence
from pytest_meshcheck.checks.probe import Probe
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.addons import scrape_interval
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.install.istio import MeshInstall
from pytest_meshcheck.install.layers import LayerContext
from pytest_meshcheck.install.plan import control_plane_for
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.load import load_run
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.report import attach_evidence, record_upgrade_result
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.session import SESSION_PLUGIN_NAME, MeshcheckSession
from pytest_meshcheck.settings import Settings, parse_duration
from pytest_meshcheck.upgrade import verify
from pytest_meshcheck.upgrade.gate import UpgradeSteps
from pytest_meshcheck.upgrade.phases import PhaseLog, failures_by_second, traffic_by_phase
from pytest_meshcheck.upgrade.plan import UpgradePlan, plan_upgrade
from pytest_meshcheck.upgrade.precheck import run_precheck

pytestmark = pytest.mark.meshcheck_upgrade

#: The background load outlives any upgrade; it is stopped when the checks after it are done.
LOAD_CEILING_S = 3 * 3600


def _failures_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["at", "failures", "phase"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _healthy_before(
    kube: Kube, plan: UpgradePlan, gateway_url: str, probe: Probe, settings: Settings
) -> list[str]:
    findings = verify.gateway_findings(gateway_url, timeout=min(settings.timeout, 60))
    findings += verify.mtls_findings(probe, mode=settings.mtls_mode)
    findings += verify.proxy_findings(kube, version=plan.from_version, revision=plan.from_revision)
    missing, _ = verify.connection_findings(kube, plan.from_istiod, timeout=min(settings.timeout, 60))
    return findings + missing


def test_traffic_survives_the_upgrade_within_budget(
    pytestconfig: pytest.Config,
    *,
    meshcheck_settings: Settings,
    meshcheck_cluster: ClusterHandle,
    meshcheck_kube: Kube,
    meshcheck_mesh: MeshInstall,
    meshcheck_bookinfo: AppInstall,
    meshcheck_gateway_url: str,
    meshcheck_probe: Probe,
    meshcheck_kiali: KialiClient,
) -> None:
    settings = meshcheck_settings  # without --meshcheck-upgrade-to the plugin skips this test
    session = pytestconfig.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    assert isinstance(session, MeshcheckSession), "the meshcheck fixtures above imply its session"
    kube = meshcheck_kube
    plan = plan_upgrade(settings, meshcheck_mesh)
    attach_evidence("upgrade plan", {**plan.__dict__, "description": plan.describe()}, "json")

    precheck = run_precheck(kube, settings, plan)
    attach_evidence("precheck", precheck.as_dict(), "json")
    if not precheck.ok:
        record_upgrade_result(
            {"from": plan.from_version, "to": plan.to_version, "verdict": "precheck failed"}
        )
        raise CheckFailed("upgrade precheck failed:\n" + "\n".join(f"  - {p}" for p in precheck.problems))
    before = _healthy_before(kube, plan, meshcheck_gateway_url, meshcheck_probe, settings)
    if before:
        raise CheckFailed(
            "the mesh was not healthy before the upgrade, so the upgrade cannot be judged:\n"
            + "\n".join(f"  - {f}" for f in before)
        )

    context = LayerContext(kube=kube, settings=settings, handle=meshcheck_cluster, progress=session.progress)
    steps = UpgradeSteps(
        plan=plan,
        control_plane=control_plane_for(context),
        timeout=settings.timeout,
        on_installed=lambda record: session.update_layer("mesh", record),
        progress=session.progress,
    )
    log = PhaseLog()
    expected = load_expected_graph(
        settings.expected_graph or data_file("graphs", "bookinfo.yaml"), meshcheck_bookinfo.namespace
    )
    run = load_run(settings, meshcheck_gateway_url, kube=kube, run_name="upgrade", duration_s=LOAD_CEILING_S)
    findings: dict[str, list[str]] = {}
    step_error: BaseException | None = None
    with run:
        try:
            moved = steps.run(log)
        except Exception as exc:  # judged below, after the load is collected
            step_error = exc
            moved = []
        with log.phase("verify"):
            if step_error is None:
                findings["proxies on the new version"] = verify.proxy_findings(
                    kube, version=plan.to_version, revision=plan.to_revision
                )
                missing, syncz_rows = verify.connection_findings(
                    kube, plan.to_istiod, timeout=settings.timeout
                )
                attach_evidence(f"{plan.to_istiod} /debug/syncz", syncz_rows, "json")
                findings["proxies connected to the new revision"] = missing
                findings["no pod left on the old version"] = [
                    f"{pod} still runs" for pod in verify.pods_left_behind(kube, plan)
                ]
                findings["webhook injects new pods"] = verify.new_pod_findings(
                    kube, plan, timeout=settings.timeout
                )
                findings["gateway"] = verify.gateway_findings(meshcheck_gateway_url, timeout=settings.timeout)
                findings["mtls"] = verify.mtls_findings(meshcheck_probe, mode=settings.mtls_mode)
                min_wait = 2 * parse_duration(scrape_interval(settings))
                seen = observe_graph(
                    meshcheck_kiali,
                    expected,
                    meshcheck_bookinfo.namespace,
                    max_5xx_share=settings.max_error_rate,
                    min_wait=0.0,  # the load has run all along: telemetry is there already
                    settle=min_wait,  # restarted destinations report mTLS a scrape later
                    patience=max(min_wait, min(settings.timeout, 120)),
                )
                attach_evidence("Kiali graph after the upgrade", seen.graph, "json")
                findings["graph"] = seen.findings("load through the upgraded mesh")
                if plan.canary:
                    findings["old revision removed"] = [
                        f"{obj} still exists" for obj in verify.old_revision_objects(kube, plan.from_revision)
                    ]
        run.stop()
    result = run.result()
    attach_load_evidence(result, name="upgrade window", p95_budget_ms=None)
    by_phase = traffic_by_phase(log, result.timeline, result.failure_events)
    by_second = failures_by_second(result.failure_events, log)
    attach_evidence("failed requests by second", _failures_csv(by_second), "csv")
    budget_ok = result.requests > 0 and result.error_rate <= plan.error_budget
    summary = {
        "from": plan.from_version,
        "to": plan.to_version,
        "strategy": plan.strategy,
        "from_revision": plan.from_revision or "default",
        "to_revision": plan.to_revision or "default",
        "revision_tag": plan.tag,
        "namespaces_moved": moved,
        "phases": log.to_list(),
        "phase_seconds": log.durations(),
        "requests": result.requests,
        "errors": result.failures,
        "error_rate": round(result.error_rate, 6),
        "error_budget": plan.error_budget,
        "load_mode": result.mode,
        "errors_by_phase": [
            {
                "phase": p.phase,
                "requests": p.requests,
                "errors": p.failures,
                "error_rate": round(p.error_rate, 6),
                "error_kinds": p.errors,
            }
            for p in by_phase
        ],
        "failed_seconds": by_second,
        "checks": {name: ("pass" if not items else "fail") for name, items in findings.items()},
        "precheck_notes": precheck.notes,
    }
    problems: list[str] = []
    if step_error is not None:
        problems.append(f"the upgrade did not complete: {type(step_error).__name__}: {step_error}")
    if result.requests == 0:
        problems.append("no request was made during the upgrade window: the error rate is unknown")
    elif not budget_ok:
        blamed = ", ".join(f"{p.phase}: {p.failures}" for p in by_phase if p.failures)
        problems.append(
            f"{result.failures} of {result.requests} requests failed during the upgrade "
            f"({result.error_rate:.3%}, budget {plan.error_budget:.3%}); failures by step: {blamed}"
        )
    for name, items in findings.items():
        problems += [f"{name}: {item}" for item in items]
    summary["verdict"] = "fail" if problems else "pass"
    record_upgrade_result(summary)
    attach_evidence("upgrade result", summary, "json")
    if problems:
        raise CheckFailed(f"{plan.describe()}:\n" + "\n".join(f"  - {p}" for p in problems))
