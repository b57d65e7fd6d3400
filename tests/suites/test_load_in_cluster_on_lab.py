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
    assert load["target_url"].startswith("http://istio-ingressgateway.istio-system.svc.cluster.local")
