"""Run the whole gate N times in a row on the lab and report whether every run passed.

A CI gate is only trusted if a healthy mesh passes it every time: one spurious red teaches a team
to press "re-run". Each run is a fresh ``pytest --meshcheck`` (a new lab, Istio, the addons,
Bookinfo and load) in its own empty directory, with the shipped defaults unless options are passed
after ``--``. It prints a row per run from the run's ``meshcheck-summary.json`` (verdict, checks,
duration, the load suite's p95 beside its budget) and exits 1 if any run did not pass.

    python benchmarks/healthy_streak.py [--runs 10] [--keep-going] [-- extra pytest options]

Timings are noisy on a shared machine; read the p95 column against its budget, not as a benchmark.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunRow:
    number: int
    exit_code: int
    verdict: str
    counts: str
    wall_s: float
    p95_ms: float | None
    p95_budget_ms: float | None
    failing: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and self.verdict == "pass"


def run_once(number: int, extra: list[str], keep: Path | None) -> RunRow:
    """One gate run in a fresh directory (kept under ``keep`` when given, for its reports)."""
    with tempfile.TemporaryDirectory(prefix="meshcheck-streak-") as scratch:
        workdir = keep / f"run-{number:02d}" if keep is not None else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "--meshcheck", "-p", "no:cacheprovider", *extra],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        wall_s = time.monotonic() - started
        (workdir / "pytest-output.txt").write_text(completed.stdout)
        summary_path = workdir / "reports" / "meshcheck-summary.json"
        if not summary_path.exists():
            tail = completed.stdout[-2000:]
            return RunRow(number, completed.returncode, f"no summary ({tail!r})", "-", wall_s, None, None, ())
        return row_from_summary(number, completed.returncode, wall_s, json.loads(summary_path.read_text()))


def row_from_summary(number: int, exit_code: int, wall_s: float, summary: dict[str, Any]) -> RunRow:
    counts = summary.get("counts", {})
    load = summary.get("load") or {}
    budget_value = next(
        (item["value"] for item in summary.get("settings", []) if item["name"] == "p95 ms"), None
    )
    failing = tuple(
        str(check) for check in [*summary.get("failing_checks", []), *summary.get("broken_checks", [])]
    )
    return RunRow(
        number=number,
        exit_code=exit_code,
        verdict=str(summary.get("verdict")),
        counts=f"{counts.get('passed', 0)} passed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('failed', 0) + counts.get('broken', 0)} not passed",
        wall_s=wall_s,
        p95_ms=load.get("p95_ms"),
        p95_budget_ms=_as_float(budget_value),
        failing=failing,
    )


def _as_float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def format_row(row: RunRow) -> str:
    p95 = "-" if row.p95_ms is None else f"{row.p95_ms:.0f}"
    budget = "-" if row.p95_budget_ms is None else f"{row.p95_budget_ms:.0f}"
    line = (
        f"{row.number:>3}  {row.verdict:<6} exit {row.exit_code}  {row.counts:<36} "
        f"{row.wall_s:6.0f} s  p95 {p95:>5} / {budget} ms"
    )
    if row.failing:
        line += "\n       not passed: " + ", ".join(row.failing)
    return line


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in args_in:
        split = args_in.index("--")
        args_in, extra = args_in[:split], args_in[split + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="how many runs in a row (default 10)")
    parser.add_argument("--keep-going", action="store_true", help="go on after a run that did not pass")
    parser.add_argument(
        "--keep", type=Path, help="keep each run's directory (reports, output) under this one"
    )
    args = parser.parse_args(args_in)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    rows: list[RunRow] = []
    print(f"{args.runs} gate runs in a row: pytest --meshcheck {' '.join(extra)}".rstrip(), flush=True)
    for number in range(1, args.runs + 1):
        row = run_once(number, extra, args.keep)
        rows.append(row)
        print(format_row(row), flush=True)
        if not row.passed and not args.keep_going:
            break
    passed = sum(row.passed for row in rows)
    p95s = sorted(row.p95_ms for row in rows if row.p95_ms is not None)
    spread = f"; load p95 {p95s[0]:.0f}-{p95s[-1]:.0f} ms" if p95s else ""
    print(f"{passed} of {len(rows)} runs passed ({args.runs} asked){spread}")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
