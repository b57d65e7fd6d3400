"""Where saved benchmark results live: ``<reports-dir>/benchmarks/<NAME>.json``.

The report setup clears only what it owns at the start of a run (``allure-results``, ``evidence``
and the summary file), so a baseline saved here survives the next run in the same reports dir,
which is what makes "save today, compare tomorrow" work. Files are written atomically (a crashed
run never leaves half a baseline) and read with errors that say how to fix the problem, because a
missing or broken baseline is a usage mistake, not a mesh regression.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_meshcheck.benchmark.record import BenchmarkRecord
from pytest_meshcheck.errors import ConfigError

BENCHMARKS_DIR = "benchmarks"
COMPARE_OPTION = "--meshcheck-benchmark-compare"


def benchmarks_dir(reports_dir: Path) -> Path:
    return reports_dir / BENCHMARKS_DIR


def baseline_path(reports_dir: Path, name: str) -> Path:
    return benchmarks_dir(reports_dir) / f"{name}.json"


def saved_names(reports_dir: Path) -> list[str]:
    """The names saved so far, sorted (what ``--meshcheck-benchmark-compare`` accepts)."""
    folder = benchmarks_dir(reports_dir)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.json") if path.is_file())


def save(record: BenchmarkRecord, reports_dir: Path, name: str) -> Path:
    """Store ``record`` under ``name`` (replacing an earlier one of that name); returns the path."""
    path = baseline_path(reports_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.with_name(name).to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load(reports_dir: Path, name: str) -> BenchmarkRecord:
    """The record saved under ``name``; ``ConfigError`` naming the option and what exists if not."""
    path = baseline_path(reports_dir, name)
    if not path.is_file():
        names = saved_names(reports_dir)
        known = ", ".join(names) if names else "none yet"
        raise ConfigError(
            f"{COMPARE_OPTION}={name}: no saved benchmark named {name!r} (looked for {path}); "
            f"saved benchmarks in {benchmarks_dir(reports_dir)}: {known}. Save one first with "
            f"--meshcheck-benchmark-save={name} (same --meshcheck-reports-dir).",
            option=COMPARE_OPTION,
            value=name,
            accepted=known,
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return BenchmarkRecord.from_json(data)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{COMPARE_OPTION}={name}: {path} is not a usable benchmark record ({exc}); save it "
            f"again with --meshcheck-benchmark-save={name}",
            option=COMPARE_OPTION,
            value=name,
        ) from exc
