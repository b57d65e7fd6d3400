"""The upgrade gate on the lab: Istio 1.26.3 -> 1.27.1 passes within the error budget with both
strategies (canary also through a revision tag), and ``upgrade-drops`` makes it fail, with the
failed requests blamed on the step that dropped them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gate_runs import run_gate, suite_verdicts

FROM, TO = "1.26.3", "1.27.1"
UPGRADE = ("--meshcheck-istio-version=" + FROM, "--meshcheck-upgrade-to=" + TO)


def upgrade_run(pytester: pytest.Pytester, *extra: str) -> tuple[int, dict[str, Any]]:
    return run_gate(pytester, *UPGRADE, *extra, suites=("upgrade",))


def assert_passed_within_budget(code: int, summary: dict[str, Any], strategy: str) -> dict[str, Any]:
    upgrade = summary["upgrade"]
    assert code == 0, (summary["failing_checks"], summary["broken_checks"])
    assert suite_verdicts(summary) == {"upgrade": "pass"}
    assert (upgrade["from"], upgrade["to"], upgrade["strategy"], upgrade["verdict"]) == (
        FROM,
        TO,
        strategy,
        "pass",
    )
    assert upgrade["requests"] > 0
    assert upgrade["error_rate"] <= upgrade["error_budget"] == 0.001
    assert set(upgrade["checks"].values()) == {"pass"}, upgrade["checks"]
    assert {"bookinfo", "meshcheck-probe-in"} <= set(upgrade["namespaces_moved"])
    phases = [p["name"] for p in upgrade["phases"]]
    assert phases[0] == "control plane" and phases[-1] == "verify", phases
    assert all(p["outcome"] == "done" for p in upgrade["phases"]), upgrade["phases"]
    return upgrade


def test_canary_upgrade_through_a_revision_tag_passes(pytester: pytest.Pytester) -> None:
    code, summary = upgrade_run(pytester, "--meshcheck-revision-tag=prod")
    upgrade = assert_passed_within_budget(code, summary, "canary")
    assert (upgrade["to_revision"], upgrade["revision_tag"]) == ("1-27-1", "prod")
    assert "revision tag prod" in upgrade["phase_seconds"]
    assert "remove old revision" in upgrade["phase_seconds"]
    assert upgrade["checks"]["old revision removed"] == "pass"


def test_in_place_upgrade_passes(pytester: pytest.Pytester) -> None:
    code, summary = upgrade_run(pytester, "--meshcheck-upgrade-strategy=in-place")
    upgrade = assert_passed_within_budget(code, summary, "in-place")
    assert upgrade["to_revision"] == "default"
    assert "remove old revision" not in upgrade["phase_seconds"]


def test_the_benchmark_after_a_canary_upgrade_measures_the_new_revision(pytester: pytest.Pytester) -> None:
    """The suites after the gate see the mesh it left: the old default revision is gone, so the
    benchmark's new client namespace must be labelled for the new revision to be injected (with
    the old label it would be plaintext and STRICT mTLS would refuse it), and its record names
    the version it measured."""
    code, summary = run_gate(
        pytester,
        *UPGRADE,
        "--meshcheck-benchmark-save=after",
        "--meshcheck-benchmark-duration=6s",
        "--meshcheck-benchmark-warmup=2s",
        suites=("upgrade", "benchmark"),
    )
    assert suite_verdicts(summary) == {"upgrade": "pass", "benchmark": "pass"}, summary["failing_checks"]
    assert code == 0
    saved = json.loads((pytester.path / "reports" / "benchmarks" / "after.json").read_text())
    environment = saved["environment"]
    assert (environment["istio_version"], environment["istio_revision"]) == (TO, "1-27-1")
    assert saved["metrics"]["kiali_lag_s"]["value"] > 0


def test_dropped_requests_fail_the_gate_and_are_blamed_on_a_step(pytester: pytest.Pytester) -> None:
    code, summary = upgrade_run(pytester, "--meshcheck-lab-faults=upgrade-drops")
    upgrade = summary["upgrade"]
    assert code == 1
    assert suite_verdicts(summary) == {"upgrade": "fail"}
    assert [c["suite"] for c in summary["failing_checks"]] == ["upgrade"]
    assert upgrade["verdict"] == "fail"
    assert upgrade["error_rate"] > upgrade["error_budget"]
    blamed = [p for p in upgrade["errors_by_phase"] if p["errors"]]
    assert blamed and all(p["phase"] != "between steps" for p in blamed), upgrade["errors_by_phase"]
    assert sum(p["errors"] for p in upgrade["errors_by_phase"]) == upgrade["errors"]
    assert sum(s["failures"] for s in upgrade["failed_seconds"]) == upgrade["errors"]
