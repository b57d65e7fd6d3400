"""Command lines, output files and CPU accounting, without starting Locust."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_meshcheck.load.command import LOCUST_MAIN, OutputFiles, base_environment, plan_processes
from pytest_meshcheck.load.cpu import CpuSample, busy_share, read_proc_cpu_seconds
from pytest_meshcheck.load.spec import (
    ENV_GENERATOR,
    ENV_REPORT_DIR,
    ENV_USER_RATE,
    LoadSpec,
    report_plugin_path,
    shipped_locustfile,
)


def _spec(tmp_path: Path, **overrides: object) -> LoadSpec:
    values: dict[str, object] = {
        "target_url": "http://127.0.0.1:8080",
        "users": 6,
        "spawn_rate": 3.0,
        "duration_s": 4.2,
        "locustfile": shipped_locustfile("http_get.py"),
        "output_dir": tmp_path,
    }
    values.update(overrides)
    return LoadSpec(**values)  # type: ignore[arg-type]


def _option(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_standalone_plan_is_one_headless_bounded_process(tmp_path: Path) -> None:
    files = OutputFiles(directory=tmp_path)
    (plan,) = plan_processes(_spec(tmp_path), files, python="/py", inherited_env={})

    assert plan.role == plan.generator == "standalone"
    assert plan.argv[:3] == ("/py", *LOCUST_MAIN)
    assert "--headless" in plan.argv
    assert _option(plan.argv, "-t") == "5s"
    assert _option(plan.argv, "-u") == "6"
    assert _option(plan.argv, "-H") == "http://127.0.0.1:8080"
    assert _option(plan.argv, "-f") == f"{shipped_locustfile('http_get.py')},{report_plugin_path()}"
    assert _option(plan.argv, "--exit-code-on-error") == "0"
    assert _option(plan.argv, "--csv") == str(files.csv_prefix)
    assert _option(plan.argv, "--html") == str(files.html)
    assert "--master" not in plan.argv
    assert plan.env[ENV_GENERATOR] == "standalone"
    assert plan.env[ENV_REPORT_DIR] == str(tmp_path)


def test_distributed_plan_is_a_master_and_its_workers_on_loopback(tmp_path: Path) -> None:
    plans = plan_processes(
        _spec(tmp_path, workers=3, rps=12.0),
        OutputFiles(directory=tmp_path),
        master_port=5999,
        inherited_env={},
    )

    master, *workers = plans
    assert master.role == "master"
    assert _option(master.argv, "--expect-workers") == "3"
    assert _option(master.argv, "--master-bind-host") == "127.0.0.1"
    assert _option(master.argv, "--master-bind-port") == "5999"
    assert int(_option(master.argv, "--expect-workers-max-wait")) > 0
    assert [w.generator for w in workers] == ["worker-1", "worker-2", "worker-3"]
    for worker in workers:
        assert "--worker" in worker.argv
        assert _option(worker.argv, "--master-port") == "5999"
        assert "--csv" not in worker.argv
        assert worker.env[ENV_GENERATOR] == worker.generator
        assert float(worker.env[ENV_USER_RATE]) == 2.0


def test_inherited_locust_settings_do_not_leak_into_a_run() -> None:
    env = base_environment({"LOCUST_HOST": "http://elsewhere", "PATH": "/bin", "LOCUST_RUN_TIME": "1h"})
    assert env["PATH"] == "/bin"
    assert not [key for key in env if key.startswith("LOCUST_")]


def test_clear_removes_an_earlier_runs_output_only(tmp_path: Path) -> None:
    files = OutputFiles(directory=tmp_path)
    stale = [files.stats_csv, files.json, files.html, files.final_report("worker-1"), files.log("master")]
    for path in stale:
        path.write_text("old")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")

    files.clear()

    assert not [path for path in stale if path.exists()]
    assert keep.exists()


def test_busy_share_is_cpu_time_over_the_window() -> None:
    samples = [CpuSample(at=100.0, cpu_s=1.0), CpuSample(at=102.0, cpu_s=1.5), CpuSample(at=104.0, cpu_s=3.5)]

    assert busy_share(samples, 100.0, 102.0) == pytest.approx(0.25)
    assert busy_share(samples, 102.0, 104.0) == pytest.approx(1.0)
    assert busy_share(samples, 101.0, 103.0) == pytest.approx((2.5 - 1.25) / 2)


def test_busy_share_refuses_windows_the_samples_do_not_cover() -> None:
    samples = [CpuSample(at=100.0, cpu_s=1.0), CpuSample(at=102.0, cpu_s=1.5)]

    assert busy_share(samples, 99.0, 101.0) is None
    assert busy_share(samples, 101.0, 103.0) is None
    assert busy_share(samples, 101.0, 101.1) is None
    assert busy_share([], 100.0, 102.0) is None


def test_proc_cpu_seconds_grow_with_work() -> None:
    before = read_proc_cpu_seconds(os.getpid())
    if before is None:
        pytest.skip("no /proc on this system")
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = read_proc_cpu_seconds(os.getpid())
    assert after is not None and after >= before + 0.1
