"""The benchmark suite against the lab: a saved baseline holds every metric, and comparing a run
with the ``slow-reviews`` fault against it fails and names the latency regression.

Each gate run is a real ``pytest --meshcheck`` in a subprocess (its own lab, Istio, addons,
Bookinfo, Locust), judged from the files it writes. The runs share one directory, as a baseline
and a later comparison share a reports dir in CI, so the save run is module-scoped. Timing on this
kind of machine is noisy: the assertions rely only on what the fault does (400 ms more per reviews
call, far beyond any tolerance) and on the comparison rule, never on healthy numbers being close.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.benchmark import store
from pytest_meshcheck.benchmark.compare import compare
from pytest_meshcheck.benchmark.metrics import CATALOGUE

RUN_OPTIONS = (
    "--meshcheck-suites=benchmark",
    "--meshcheck-benchmark-duration=8s",
    "--meshcheck-benchmark-warmup=2s",
    "--meshcheck-timeout=120s",
    "-p",
    "no:cacheprovider",
)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory (inside this checkout pytest would also collect the project's tests)."""
    return tmp_path_factory.mktemp("benchmark-runs")


def run_gate(directory: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not (name == "MESHCHECK" or (name.startswith("MESHCHECK_") and name != "MESHCHECK_HOME"))
    }
    summary_path = directory / "reports" / "meshcheck-summary.json"
    summary_path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--meshcheck", *RUN_OPTIONS, *extra],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = done.stdout + done.stderr
    assert summary_path.exists(), output[-4000:]
    return done.returncode, json.loads(summary_path.read_text()), output


@pytest.fixture(scope="module")
def baseline_run(runs_dir: Path) -> tuple[int, dict[str, Any], str]:
    return run_gate(runs_dir, "--meshcheck-benchmark-save=base")


def _check(summary: dict[str, Any]) -> dict[str, Any]:
    checks = summary["suites"]["benchmark"]["checks"]
    assert len(checks) == 1, checks
    check: dict[str, Any] = checks[0]
    return check


def test_a_saved_benchmark_holds_every_metric_and_the_summary_its_section(
    runs_dir: Path, baseline_run: tuple[int, dict[str, Any], str]
) -> None:
    code, summary, output = baseline_run
    assert code == 0, output[-4000:]
    assert summary["verdict"] == "pass"
    saved = json.loads((runs_dir / "reports" / "benchmarks" / "base.json").read_text())
    assert set(saved["metrics"]) == {spec.name for spec in CATALOGUE}
    assert saved["name"] == "base"
    assert saved["load_shape"] == {
        "mode": "closed-loop",
        "users": 5,
        "spawn_rate": 5.0,
        "workers": 0,
        "target_rps": None,
        "duration_s": 8.0,
        "warmup_s": 2.0,
        "request": "GET /productpage",
    }
    environment = saved["environment"]
    assert environment["cluster"] == "lab"
    assert environment["istio_version"] == "1.30.3"
    assert environment["istio_revision"] == "default"
    assert int(environment["host_cores"]) >= 1
    assert isinstance(saved["generator_saturated"], bool)
    metrics = {name: value["value"] for name, value in saved["metrics"].items()}
    assert metrics["gateway_rps"] > 0
    assert 0 < metrics["gateway_p50_ms"] <= metrics["gateway_p90_ms"] <= metrics["gateway_p99_ms"]
    assert metrics["kiali_lag_s"] > 0 and metrics["prometheus_lag_s"] > 0
    assert metrics["convergence_s"] >= 0

    section = summary["benchmark"]
    assert section["saved_as"] == "base"
    assert Path(section["saved_to"]) == runs_dir / "reports" / "benchmarks" / "base.json"
    assert set(section["metrics"]) == set(saved["metrics"])
    assert section["metrics"]["gateway_p50_ms"]["unit"] == "ms"
    assert section["comparison"] is None
    evidence = {item["name"] for item in _check(summary)["evidence"]}
    assert {
        "benchmark: results table",
        "benchmark: results table (HTML)",
        "benchmark: mesh vs bypass latency",
        "benchmark: observability lag",
        "benchmark: control-plane convergence",
    } <= evidence


def test_slow_reviews_against_the_baseline_fails_naming_the_latency_regression(
    runs_dir: Path, baseline_run: tuple[int, dict[str, Any], str]
) -> None:
    assert baseline_run[0] == 0, "no healthy baseline to compare with"
    code, summary, output = run_gate(
        runs_dir,
        "--meshcheck-benchmark-compare=base",
        "--meshcheck-benchmark-save=slow",
        "--meshcheck-lab-faults=slow-reviews",
    )
    assert code == 1, output[-4000:]
    assert summary["verdict"] == "fail"
    check = _check(summary)
    assert check["status"] == "failed"
    assert check["category"] == "mesh regression"
    message = check["message"]
    assert "regressed beyond the 25% tolerance against baseline 'base'" in message
    assert "gateway p50 latency: " in message
    assert "latency added by the mesh, p50: " in message
    comparison = summary["benchmark"]["comparison"]
    assert {"gateway_p50_ms", "mesh_added_p50_ms"} <= set(comparison["regressed"])
    p50 = comparison["metrics"]["gateway_p50_ms"]
    assert p50["after"] - p50["before"] > 200  # the fault adds 400 ms per reviews call
    assert any("lab_faults '' -> 'slow-reviews'" in warning for warning in comparison["warnings"])
    evidence = {item["name"]: item for item in check["evidence"]}
    assert "benchmark: before/after table" in evidence
    assert evidence["benchmark: before/after"]["kind"] == "png"
    table = (runs_dir / "reports" / evidence["benchmark: before/after table"]["path"]).read_text()
    assert "REGRESSED" in table

    # Real records: the baseline compared with itself passes; the slow one against it does not.
    base = store.load(runs_dir / "reports", "base")
    slow = store.load(runs_dir / "reports", "slow")
    assert compare(base, base, tolerance_pct=0.0).ok
    assert not compare(base, slow, tolerance_pct=25.0).ok


def test_comparing_with_a_baseline_that_does_not_exist_is_a_configuration_error(
    runs_dir: Path, baseline_run: tuple[int, dict[str, Any], str]
) -> None:
    code, summary, output = run_gate(runs_dir, "--meshcheck-benchmark-compare=nightly")
    assert code == 1, output[-4000:]
    assert summary["verdict"] == "error"
    check = _check(summary)
    assert check["status"] == "broken"
    assert check["category"] == "configuration error"
    assert "--meshcheck-benchmark-compare=nightly: no saved benchmark named 'nightly'" in check["message"]
    assert "base" in check["message"]
    # Refused before the cluster was provisioned: nothing was measured.
    assert summary["cluster"] is None
    assert summary["benchmark"] is None
