"""The shipped suites against the lab: a healthy mesh passes every check, and each lab fault makes
the run fail in the suite built to catch it.

Each case is a real ``pytest --meshcheck`` run in a subprocess (its own lab, Istio, Prometheus,
Kiali, Bookinfo and Locust), judged from the JSON verdict the run writes.
"""

from __future__ import annotations

import pytest
from gate_runs import CONFORMANCE_SUITES, run_gate, suite_verdicts

#: fault -> the suite that must fail because of it.
FAULT_SUITE = {
    "injection-off": "injection",
    "mtls-not-enforced": "mtls",
    "plaintext-hop": "mtls",
    "gateway-404": "gateway",
    "ratings-5xx": "graph",
    "missing-edge": "graph",
    "kiali-stale": "graph",
    "proxy-skew": "versions",
    "slow-reviews": "load",
}

#: Suites that may fail too, because the fault really breaks what they check (not spuriously):
#: without injection nothing is meshed (no mTLS, no telemetry, no proxies to version); with the
#: gateway's routes gone no traffic reaches Bookinfo; a plaintext hop is also a non-mTLS graph edge.
CONSEQUENCES = {
    "injection-off": {"mtls", "graph", "versions"},
    "gateway-404": {"graph", "load"},
    "plaintext-hop": {"graph"},
}

#: A fault makes checks wait for what never comes (a route, telemetry, an edge) until their
#: patience, which --meshcheck-timeout bounds; 45 s is ample on the lab and keeps a fault run short.
FAULT_RUN_TIMEOUT = "45s"
#: The load suite's p95 budget in every run but slow-reviews': the default 400 ms is what that
#: fault is judged by, and elsewhere latency is not under test, while on two busy cores a 5-user
#: p95 now and then passes 400 ms by itself (540 ms once in CI). The default budget on a healthy lab
#: is exercised by the README's main job and by benchmarks/healthy_streak.py (docs/ci.md).
RELAXED_P95_MS = 2000


def test_a_healthy_lab_passes_every_check(pytester: pytest.Pytester) -> None:
    code, summary = run_gate(pytester, f"--meshcheck-p95-ms={RELAXED_P95_MS}")
    assert summary["broken_checks"] == [], summary["broken_checks"]
    assert summary["failing_checks"] == [], summary["failing_checks"]
    assert code == 0
    assert summary["verdict"] == "pass"
    assert summary["counts"]["passed"] >= 12
    assert set(suite_verdicts(summary)) == set(CONFORMANCE_SUITES)


@pytest.mark.parametrize("fault", sorted(FAULT_SUITE))
def test_each_fault_fails_the_suite_built_for_it(pytester: pytest.Pytester, fault: str) -> None:
    budget = () if FAULT_SUITE[fault] == "load" else (f"--meshcheck-p95-ms={RELAXED_P95_MS}",)
    code, summary = run_gate(pytester, f"--meshcheck-lab-faults={fault}", *budget, timeout=FAULT_RUN_TIMEOUT)
    verdicts = suite_verdicts(summary)
    expected = FAULT_SUITE[fault]
    assert code == 1, summary
    assert summary["verdict"] == "fail"
    assert verdicts[expected] == "fail", verdicts
    failing = {check["suite"] for check in summary["failing_checks"]}
    spurious = failing - {expected} - CONSEQUENCES.get(fault, set())
    assert not spurious, f"{fault} also failed {spurious}: {summary['failing_checks']}"
    assert summary["broken_checks"] == [], summary["broken_checks"]
    failed = [c for suite in summary["suites"].values() for c in suite["checks"] if c["status"] == "failed"]
    assert all(any(e["name"] == "diagnostics" for e in c["evidence"]) for c in failed), (
        "every failed check carries the cluster's diagnostics"
    )
