"""benchmarks/healthy_streak.py reads each run's summary into a row: what it prints must be true."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "healthy_streak.py"


@pytest.fixture(scope="module")
def streak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthy_streak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def summary(verdict: str, *, failed: tuple[str, ...] = (), p95: float | None = 180.0) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "counts": {"passed": 20, "failed": len(failed), "broken": 0, "skipped": 2, "total": 22 + len(failed)},
        "failing_checks": [{"nodeid": nodeid, "category": "regression"} for nodeid in failed],
        "broken_checks": [],
        "settings": [{"name": "p95 ms", "value": "400", "source": "default"}],
        "load": None if p95 is None else {"p95_ms": p95},
    }


def test_a_passing_run_reads_as_passed_with_its_p95_beside_the_budget(streak: ModuleType) -> None:
    row = streak.row_from_summary(1, 0, 150.0, summary("pass"))
    assert row.passed
    line = streak.format_row(row)
    assert "pass" in line and "20 passed, 2 skipped, 0 not passed" in line and "180 / 400 ms" in line


def test_a_failed_run_names_its_failing_checks(streak: ModuleType) -> None:
    row = streak.row_from_summary(3, 1, 150.0, summary("fail", failed=("suites/test_load.py::test_p95",)))
    assert not row.passed
    assert "suites/test_load.py::test_p95" in streak.format_row(row)


def test_exit_code_and_verdict_must_both_say_pass(streak: ModuleType) -> None:
    assert not streak.row_from_summary(1, 1, 1.0, summary("pass")).passed
    assert "p95     - / 400 ms" in streak.format_row(
        streak.row_from_summary(1, 0, 1.0, summary("pass", p95=None))
    )
