"""Real Locust runs (a few seconds each) against the counting target on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.command import OutputFiles, plan_processes
from pytest_meshcheck.load.locust_output import (
    account_from_report,
    history_from_csv,
    reports_in_log,
    stats_from_entries,
    write_history_csv,
)
from pytest_meshcheck.load.results import LoadResult
from pytest_meshcheck.load.runner import LoadRun
from pytest_meshcheck.load.spec import (
    CLOSED_LOOP,
    CONSTANT_RATE,
    ENV_REPORT_DIR,
    ENV_URLS,
    LoadSpec,
    shipped_locustfile,
)
from tests.load.stopping import stopped_by_a_failing_check
from tests.load.target import Target


def _spec(target_url: str, output_dir: Path, paths: str = "/ok", **overrides: object) -> LoadSpec:
    values: dict[str, object] = {
        "target_url": target_url,
        "users": 4,
        "spawn_rate": 100.0,
        "duration_s": 2.0,
        "locustfile": shipped_locustfile("http_get.py"),
        "output_dir": output_dir,
        "env": {ENV_URLS: paths},
    }
    values.update(overrides)
    return LoadSpec(**values)  # type: ignore[arg-type]


def _run(spec: LoadSpec) -> LoadResult:
    run = LoadRun(spec).start()
    assert run.wait(), "the run did not end by itself"
    return run.result()


def test_standalone_run_counts_what_the_target_served(target: Target, output_dir: Path) -> None:
    result = _run(_spec(target.url, output_dir, "/ok,/fail,/missing"))

    assert result.mode == CLOSED_LOOP
    assert result.requests > 0
    assert result.requests == target.total
    assert {e.name: e.requests for e in result.endpoints} == dict(target.by_path)
    assert result.failures == target.by_path["/fail"] + target.by_path["/missing"]
    assert result.error_rate == pytest.approx(result.failures / result.requests)
    assert (
        0 < result.latency.p50_ms <= result.latency.p95_ms <= result.latency.p99_ms <= result.latency.max_ms
    )
    assert result.rps == pytest.approx(result.requests / result.measured_s)
    assert result.first_request_at is not None and result.last_request_at is not None
    assert result.last_request_at - result.first_request_at == pytest.approx(result.measured_s)
    assert result.target_rps is None
    assert not result.target_missed
    assert result.history and result.history[-1].total_requests <= result.requests
    (generator,) = result.generators
    assert generator.role == "standalone"
    assert generator.exit_code == 0
    assert generator.cpu_s is not None and generator.cpu_s > 0
    assert generator.requests_made == result.requests
    assert result.aggregation_complete is True
    artifacts = result.artifacts
    for path in (
        artifacts.stats_csv,
        artifacts.history_csv,
        artifacts.failures_csv,
        artifacts.json,
        artifacts.html,
    ):
        assert path is not None and path.stat().st_size > 0
    assert result.to_dict()["requests"] == result.requests


def test_timeline_sums_to_the_totals_and_failures_carry_their_times(target: Target, output_dir: Path) -> None:
    before = time.time()
    result = _run(_spec(target.url, output_dir, "/ok,/fail,/missing"))
    after = time.time()

    assert result.timeline, "no timeline recorded"
    seconds = [s.at for s in result.timeline]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)
    assert result.timeline_requests == result.requests == target.total
    assert sum(s.failures for s in result.timeline) == result.failures
    assert all(0 <= s.failures <= s.requests for s in result.timeline)
    assert int(before) <= seconds[0] and seconds[-1] <= after

    assert result.failure_events_dropped == 0
    assert len(result.failure_events) == result.failures
    times = [e.at for e in result.failure_events]
    assert times == sorted(times)
    assert result.first_request_at is not None and result.last_request_at is not None
    assert result.first_request_at - 0.01 <= times[0] and times[-1] <= result.last_request_at + 0.01
    by_name = {name: [e for e in result.failure_events if e.name == name] for name in ("/fail", "/missing")}
    assert len(by_name["/fail"]) == target.by_path["/fail"]
    assert all(e.method == "GET" and "status 500" in e.error for e in by_name["/fail"])
    assert all("status 404" in e.error for e in by_name["/missing"])
    failing_seconds = {int(e.at) for e in result.failure_events}
    assert failing_seconds <= {s.at for s in result.timeline if s.failures}

    data = json.loads(json.dumps(result.to_dict()))
    assert sum(row[1] for row in data["timeline"]) == result.requests
    assert data["timeline_columns"] == ["at", "requests", "failures"]
    assert len(data["failure_events"]) == result.failures
    assert data["failure_event_columns"] == ["at", "method", "name", "error"]


def test_failures_are_grouped_by_kind(target: Target, output_dir: Path) -> None:
    result = _run(_spec(target.url, output_dir, "/ok,/fail,/missing"))

    groups = {(g.method, g.name): g for g in result.failures_by_type}
    assert set(groups) == {("GET", "/fail"), ("GET", "/missing")}
    assert "status 500" in groups["GET", "/fail"].error
    assert "status 404" in groups["GET", "/missing"].error
    assert groups["GET", "/fail"].occurrences == target.by_path["/fail"]
    assert sum(g.occurrences for g in result.failures_by_type) == result.failures


def test_distributed_aggregate_is_the_sum_of_the_workers(target: Target, output_dir: Path) -> None:
    result = _run(_spec(target.url, output_dir, workers=2))

    workers = [g for g in result.generators if g.role == "worker"]
    assert [g.generator for g in workers] == ["worker-1", "worker-2"]
    assert [g.role for g in result.generators].count("master") == 1
    for worker in workers:
        served = target.by_generator[worker.generator]
        assert served > 0, f"{worker.generator} sent nothing"
        assert worker.requests_made == served
    assert result.requests == target.total == sum(target.by_generator[g.generator] for g in workers)
    assert result.aggregation_complete is True
    assert all(g.exit_code == 0 for g in result.generators)


def test_distributed_timeline_is_merged_over_the_workers(target: Target, output_dir: Path) -> None:
    result = _run(_spec(target.url, output_dir, "/ok,/fail", workers=2))

    assert all(target.by_generator[f"worker-{n}"] > 0 for n in (1, 2)), dict(target.by_generator)
    assert result.timeline_requests == result.requests == target.total
    assert sum(s.failures for s in result.timeline) == result.failures == target.by_path["/fail"]
    assert [s.at for s in result.timeline] == sorted({s.at for s in result.timeline})
    assert len(result.failure_events) == result.failures
    assert [e.at for e in result.failure_events] == sorted(e.at for e in result.failure_events)


def test_constant_rate_reports_target_and_achieved_rate(target: Target, output_dir: Path) -> None:
    spec = _spec(target.url, output_dir, users=2, rps=4.0, duration_s=2.0)
    result = _run(spec)

    assert result.mode == CONSTANT_RATE
    assert result.target_rps == 4.0
    assert result.achieved_rps == pytest.approx(result.requests / result.measured_s)
    assert result.target_missed is (result.achieved_rps < 0.9 * 4.0)
    # Paced: at most one request per user per half second (plus each user's first), whatever
    # the machine's speed; closed loop would send hundreds.
    assert 0 < result.requests <= 4.0 * spec.run_time_s + spec.users


def test_unreachable_rate_target_is_flagged(target: Target, output_dir: Path) -> None:
    target.slow_s = 0.25
    result = _run(_spec(target.url, output_dir, "/slow", users=2, rps=1000.0))

    # Two users waiting 0.25 s per request cannot come near 1000 requests per second.
    assert result.target_missed
    assert result.to_dict()["target_missed"] is True


def test_unreachable_target_is_a_result_with_every_request_failed(output_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens once the socket is closed
    result = _run(_spec(f"http://127.0.0.1:{closed_port}", output_dir, users=2, think_time_s=0.05))

    assert result.requests > 0
    assert result.error_rate == 1.0
    assert result.failures_by_type
    assert all("onnect" in g.error for g in result.failures_by_type)


def test_background_run_is_stopped_when_the_body_raises(target: Target, output_dir: Path) -> None:
    run = LoadRun(_spec(target.url, output_dir, duration_s=120.0, think_time_s=0.01))

    result = stopped_by_a_failing_check(run, target, load_arrives_within_s=60)

    assert result.artifacts.html is not None


def test_a_run_started_where_sigint_is_ignored_still_stops_gracefully(
    target: Target, output_dir: Path
) -> None:
    """A background job of a non-interactive shell (CI scripts, nohup) starts with SIGINT ignored
    and passes that on: Locust must still get the SIGINT that makes it write its reports, instead
    of being killed after the grace period without them (seen in a CI run)."""
    run = LoadRun(_spec(target.url, output_dir, duration_s=120.0, think_time_s=0.01))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run.start()
    finally:
        signal.signal(signal.SIGINT, previous)

    result = stopped_by_a_failing_check(run, target, load_arrives_within_s=60)

    assert [process.exit_code for process in result.generators] == [0]
    assert result.artifacts.html is not None
    assert sum(second.requests for second in result.timeline) == result.requests


def test_a_report_printed_to_the_log_carries_the_stats_history_and_the_cpu_time(
    target: Target, output_dir: Path, tmp_path: Path
) -> None:
    """What a process prints when it has no report directory (a pod) holds what a local run's
    harness reads from Locust's files and from watching the process."""
    spec = _spec(target.url, output_dir, duration_s=3.0)
    files = OutputFiles(directory=output_dir)
    output_dir.mkdir(parents=True)
    (plan,) = plan_processes(spec, files)
    env = {key: value for key, value in plan.env.items() if key != ENV_REPORT_DIR}
    # As in a pod, no --json-file: Locust clears its stats when it serializes them for that file.
    at = plan.argv.index("--json-file")
    argv = plan.argv[:at] + plan.argv[at + 2 :]
    done = subprocess.run(
        argv, env=env, cwd=output_dir, capture_output=True, text=True, timeout=120, check=True
    )
    (report,) = reports_in_log(done.stdout, source="standalone")
    table = stats_from_entries(report["stats"], source="standalone")
    assert table.total.requests == target.total > 0

    with files.history_csv.open(newline="") as locusts_own:
        assert report["history_columns"] == next(csv.reader(locusts_own))
    printed = tmp_path / "printed_stats_history.csv"
    assert write_history_csv(report, printed, source="standalone")
    history = history_from_csv(printed)
    assert len(history) >= spec.run_time_s
    assert [p.at for p in history] == sorted(p.at for p in history)
    totals = [p.total_requests for p in history]
    assert totals == sorted(totals) and 0 < totals[-1] <= table.total.requests
    assert max(p.users for p in history) == spec.users
    assert any(p.p50_ms for p in history) and all(p.rps >= 0 for p in history)

    account = account_from_report(report, source="standalone")
    assert account.cpu is not None
    times, cpu = [s.at for s in account.cpu], [s.cpu_s for s in account.cpu]
    assert times == sorted(times) and cpu == sorted(cpu) and cpu[-1] > 0
    assert table.first_at is not None and table.last_at is not None
    assert times[0] <= table.first_at and table.last_at <= times[-1]


def test_bookinfo_locustfile_validates_what_the_gateway_returns(target: Target, output_dir: Path) -> None:
    page = b"<html><head><title>Simple Bookstore App</title></head></html>"
    target.pages["/productpage"] = (200, "text/html", page)
    target.pages["/api/v1/products"] = (
        200,
        "application/json",
        b'[{"id": 0, "title": "The Comedy of Errors"}]',
    )
    target.pages["/api/v1/products/0/reviews"] = (200, "application/json", b'{"error": "unavailable"}')
    spec = _spec(
        target.url, output_dir, locustfile=shipped_locustfile("bookinfo.py"), host_header="bookinfo.test"
    )
    result = _run(spec)

    by_name = {e.name: e for e in result.endpoints}
    assert by_name["/productpage"].requests > 0
    assert by_name["/productpage"].failures == 0
    assert by_name["/api/v1/products"].failures == 0
    reviews = by_name["/api/v1/products/0/reviews"]
    assert reviews.failures == reviews.requests > 0
    (group,) = result.failures_by_type
    assert "200 without reviews" in group.error
    assert set(target.hosts) == {"bookinfo.test"}


def test_bookinfo_locustfile_fails_a_200_without_the_title(target: Target, output_dir: Path) -> None:
    target.pages["/productpage"] = (200, "text/html", b"<html>upstream connect error</html>")
    result = _run(_spec(target.url, output_dir, locustfile=shipped_locustfile("bookinfo.py"), duration_s=1.0))

    page = {e.name: e for e in result.endpoints}["/productpage"]
    assert page.failures == page.requests > 0
    assert any("Simple Bookstore App" in g.error for g in result.failures_by_type)


def test_bad_locustfile_is_a_load_error_with_the_log_as_evidence(tmp_path: Path, output_dir: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("from locust import HttpUser\nclass U(HttpUser:\n")
    run = LoadRun(_spec("http://127.0.0.1:9", output_dir, locustfile=broken)).start()
    assert run.wait(timeout=60)

    with pytest.raises(LoadError, match="standalone") as caught:
        run.result()
    assert any("SyntaxError" in text for text in caught.value.evidence.values())


def test_missing_locustfile_is_refused_before_starting(tmp_path: Path, output_dir: Path) -> None:
    with pytest.raises(LoadError, match="does not exist"):
        LoadRun(_spec("http://127.0.0.1:9", output_dir, locustfile=tmp_path / "nope.py")).start()


def test_python_without_locust_is_a_load_error(tmp_path: Path, output_dir: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    run = LoadRun(_spec("http://127.0.0.1:9", output_dir), python=str(venv / "bin" / "python")).start()
    assert run.wait(timeout=60)

    with pytest.raises(LoadError, match="Locust is not installed"):
        run.result()


def test_locust_missing_from_this_interpreter_is_refused(
    monkeypatch: pytest.MonkeyPatch, output_dir: Path
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "locust" else real_find_spec(name, *a)
    )
    with pytest.raises(LoadError, match="pip install locust"):
        LoadRun(_spec("http://127.0.0.1:9", output_dir)).start()


def test_a_worker_that_dies_is_a_load_error(target: Target, output_dir: Path) -> None:
    run = LoadRun(_spec(target.url, output_dir, workers=2, duration_s=60.0, think_time_s=0.01)).start()
    try:
        assert target.wait_for_requests(10, timeout=60), "no load arrived"
        worker = run._processes[1]
        os.kill(worker.pid, signal.SIGKILL)
        assert run.wait(timeout=60)
    finally:
        run.stop()

    with pytest.raises(LoadError, match="worker") as caught:
        run.result()
    assert caught.value.evidence


def test_loading_the_load_package_does_not_import_locust() -> None:
    program = (
        "import sys\n"
        "import pytest_meshcheck.load.runner, pytest_meshcheck.load.results, pytest_meshcheck.load.spec\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_stop_is_idempotent_and_start_only_once(target: Target, output_dir: Path) -> None:
    run = LoadRun(_spec(target.url, output_dir, duration_s=60.0))
    with run:
        assert target.wait_for_requests(1, timeout=60)
    started = time.monotonic()
    run.stop()
    assert time.monotonic() - started < 60  # a second stop does not wait on anything
    with pytest.raises(LoadError, match="already started"):
        run.start()
