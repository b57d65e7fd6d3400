"""The load suite with ``--meshcheck-load-in-cluster`` on the lab: a real ``pytest --meshcheck`` run in
a subprocess, whose Locust master and two workers run as Jobs in the cluster (the lab runs the real
Locust for the ``locustio/locust`` image) against the ingress gateway's Service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _load_result(reports: Path) -> dict[str, Any]:
    """The ``load: Locust result`` attachment the suite wrote to the Allure results."""
    for path in sorted((reports / "allure-results").glob("*-attachment.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "aggregation_complete" in data and "origin" in data:
            return data
    raise AssertionError(f"no Locust result among the attachments in {reports}")


def _attachment_names(reports: Path) -> set[str]:
    def names(node: dict[str, Any]) -> set[str]:
        found = {str(a["name"]) for a in node.get("attachments") or []}
        for step in node.get("steps") or []:
            found |= names(step)
        return found

    return set().union(
        *(names(json.loads(path.read_text())) for path in (reports / "allure-results").glob("*-result.json"))
    )


def test_in_cluster_load_passes_and_aggregates_the_sum_of_its_workers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--meshcheck",
        "--meshcheck-suites=load",
        "--meshcheck-load-in-cluster",
        "--meshcheck-load-workers=2",
        "--meshcheck-load-duration=8s",
        "--meshcheck-timeout=120s",
        "-p",
        "no:cacheprovider",
        timeout=900,
    )
    reports = Path(pytester.path) / "reports"
    summary = json.loads((reports / "meshcheck-summary.json").read_text())
    assert summary["verdict"] == "pass", (summary["failing_checks"], summary["broken_checks"])
    assert result.ret == 0

    load = _load_result(reports)
    assert load["origin"].startswith("in-cluster"), load["origin"]
    assert load["workers"] == 2
    workers = [g for g in load["generators"] if g["role"] == "worker"]
    assert len(workers) == 2
    assert all(g["requests_made"] > 0 and g["exit_code"] == 0 for g in workers)
    assert load["requests"] == sum(g["requests_made"] for g in workers) > 0
    assert load["aggregation_complete"] is True
    assert sum(row[1] for row in load["timeline"]) == load["requests"]
    # The master's stats history and every pod's CPU use came through the logs too.
    assert load["history"] and 0 < load["history"][-1]["total_requests"] <= load["requests"]
    assert all(g["busy"] is not None for g in load["generators"])
    assert "load: latency percentiles" in _attachment_names(reports)
    assert load["target_url"].startswith("http://istio-ingressgateway.istio-system.svc.cluster.local")
