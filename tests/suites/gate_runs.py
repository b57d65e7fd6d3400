"""Running a real ``pytest --meshcheck`` gate on the lab in a subprocess, judged from its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CONFORMANCE_SUITES = ("injection", "mtls", "gateway", "graph", "versions", "load")


def run_gate(
    pytester: pytest.Pytester,
    *extra: str,
    suites: tuple[str, ...] = CONFORMANCE_SUITES,
    timeout: str = "120s",
) -> tuple[int, dict[str, Any]]:
    """Exit code and ``meshcheck-summary.json`` of one gate run in ``pytester``'s directory."""
    result = pytester.runpytest_subprocess(
        "--meshcheck",
        f"--meshcheck-suites={','.join(suites)}",
        "--meshcheck-load-duration=10s",
        "-p",
        "no:cacheprovider",
        f"--meshcheck-timeout={timeout}",
        *extra,
        timeout=1200,
    )
    summary_path = Path(pytester.path) / "reports" / "meshcheck-summary.json"
    assert summary_path.exists(), result.stdout.str()[-3000:]
    return int(result.ret), json.loads(summary_path.read_text())


def suite_verdicts(summary: dict[str, Any]) -> dict[str, str]:
    return {name: data["verdict"] for name, data in summary["suites"].items()}
