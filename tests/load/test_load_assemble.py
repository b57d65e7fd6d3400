"""Building a result from parsed Locust output: the one builder both kinds of run use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.load.assemble import ProcessOutcome, build_result
from pytest_meshcheck.load.cpu import CpuSample
from pytest_meshcheck.load.locust_output import (
    FinalAccount,
    account_from_report,
    final_account,
    stats_from_json,
)
from pytest_meshcheck.load.results import LoadArtifacts, LoadResult
from pytest_meshcheck.load.spec import CLOSED_LOOP, CONSTANT_RATE, LoadSpec, shipped_locustfile

DATA = Path(__file__).parent / "data"
#: The request window of ``recorded.json``: 4 s, 20 requests, 2 failed.
FIRST_AT, LAST_AT = 1795647029.0, 1795647033.0


def _spec(**overrides: Any) -> LoadSpec:
    values: dict[str, Any] = {
        "target_url": "http://127.0.0.1:9",
        "users": 4,
        "spawn_rate": 10.0,
        "duration_s": 4.0,
        "locustfile": shipped_locustfile("http_get.py"),
        "output_dir": Path("unused"),
    }
    values.update(overrides)
    return LoadSpec(**values)


def _artifacts(**paths: Path) -> LoadArtifacts:
    values: dict[str, Any] = dict.fromkeys(
        ("stats_csv", "history_csv", "failures_csv", "exceptions_csv", "json", "html")
    )
    values.update(paths)
    return LoadArtifacts(**values, logs=())


def _worker(generator: str, requests: int, failures: int) -> FinalAccount:
    report = {
        "generator": generator,
        "role": "worker",
        "requests_made": requests,
        "failures_made": failures,
        "timeline": [[int(FIRST_AT), requests, failures]],
        "failure_events": [[FIRST_AT + 0.5, "/productpage", "GET", "status 500"]] * failures,
    }
    return account_from_report(report, source=generator)


def _build(
    spec: LoadSpec,
    accounts: dict[str, FinalAccount],
    processes: tuple[ProcessOutcome, ...],
    artifacts: LoadArtifacts | None = None,
) -> LoadResult:
    return build_result(
        spec,
        target_url="http://gateway",
        table=stats_from_json(DATA / "recorded.json"),
        accounts=accounts,
        processes=processes,
        artifacts=artifacts or _artifacts(),
        stopped_early=False,
        origin="somewhere",
    )


def _distributed() -> tuple[ProcessOutcome, ...]:
    return (
        ProcessOutcome(role="master", generator="master", exit_code=0),
        ProcessOutcome(role="worker", generator="worker-1", exit_code=0),
        ProcessOutcome(role="worker", generator="worker-2", exit_code=0),
    )


def test_a_distributed_result_sums_its_workers_and_labels_the_rate_it_was_asked_for() -> None:
    accounts = {
        "master": final_account(DATA / "final-master.json"),
        "worker-1": _worker("worker-1", 12, 1),
        "worker-2": _worker("worker-2", 8, 1),
    }
    result = _build(_spec(workers=2, rps=10.0), accounts, _distributed())

    assert result.mode == CONSTANT_RATE and result.target_rps == 10.0
    assert (result.requests, result.failures, result.measured_s) == (20, 2, 4.0)
    assert result.achieved_rps == 5.0 and result.target_missed
    assert (result.first_request_at, result.last_request_at) == (FIRST_AT, LAST_AT)
    assert [(g.generator, g.requests_made) for g in result.generators] == [
        ("master", None),
        ("worker-1", 12),
        ("worker-2", 8),
    ]
    assert result.aggregation_complete is True
    assert result.timeline_requests == 20 and len(result.failure_events) == 2
    assert [g.name for g in result.failures_by_type] == ["/b", "/a"]  # the master's account
    assert result.exceptions[0].message == "ValueError('x')"
    assert (result.target_url, result.origin) == ("http://gateway", "somewhere")


def test_a_missing_worker_account_leaves_the_timeline_and_the_aggregation_unknown() -> None:
    accounts = {"master": final_account(DATA / "final-master.json"), "worker-1": _worker("worker-1", 12, 1)}
    result = _build(_spec(workers=2), accounts, _distributed())

    assert result.mode == CLOSED_LOOP and not result.target_missed
    assert result.generators[2].requests_made is None
    assert result.aggregation_complete is None
    assert result.timeline == () and result.failure_events == ()


def test_failures_and_exceptions_fall_back_to_locusts_csv_without_the_leads_account() -> None:
    standalone = (ProcessOutcome(role="standalone", generator="standalone", exit_code=0),)
    csv = _artifacts(
        failures_csv=DATA / "recorded_failures.csv", exceptions_csv=DATA / "recorded_exceptions.csv"
    )

    without = _build(_spec(), {}, standalone, csv)
    assert [g.occurrences for g in without.failures_by_type] == [9, 3]
    assert without.exceptions[0].message == "KeyError('reviews')"
    assert _build(_spec(), {}, standalone).failures_by_type == ()

    account = account_from_report(
        {"generator": "standalone", "role": "standalone", "errors": [], "exceptions": []}, source="s"
    )
    with_account = _build(_spec(), {"standalone": account}, standalone, csv)
    assert with_account.failures_by_type == () and with_account.exceptions == ()


def test_the_history_is_read_from_the_history_csv() -> None:
    standalone = (ProcessOutcome(role="standalone", generator="standalone", exit_code=0),)

    result = _build(_spec(), {}, standalone, _artifacts(history_csv=DATA / "recorded_stats_history.csv"))

    assert [p.total_requests for p in result.history] == [0, 26, 62]
    assert _build(_spec(), {}, standalone).history == ()


def test_a_generator_is_as_busy_as_its_cpu_time_over_the_request_window() -> None:
    samples = (
        CpuSample(at=FIRST_AT - 10, cpu_s=1.0),  # start-up does not count
        CpuSample(at=FIRST_AT, cpu_s=5.0),
        CpuSample(at=LAST_AT, cpu_s=8.8),
    )
    processes = (
        ProcessOutcome(
            role="standalone", generator="standalone", exit_code=0, cpu_s=9.0, cpu_samples=samples
        ),
    )

    (generator,) = _build(_spec(), {}, processes).generators

    assert generator.busy == pytest.approx(0.95)
    assert generator.cpu_s == 9.0
    assert generator.saturated
    (unmeasured,) = _build(
        _spec(), {}, (ProcessOutcome(role="standalone", generator="standalone", exit_code=0),)
    ).generators
    assert unmeasured.busy is None and not unmeasured.saturated


def test_a_pod_is_as_busy_as_the_cpu_time_it_reported_itself() -> None:
    report = {
        "generator": "standalone-x1",
        "role": "standalone",
        "cpu": [[FIRST_AT - 10, 0.5], [FIRST_AT, 1.0], [LAST_AT, 2.0], [LAST_AT + 1, 2.5]],
    }
    processes = (ProcessOutcome(role="standalone", generator="standalone-x1", exit_code=0),)

    (generator,) = _build(
        _spec(), {"standalone-x1": account_from_report(report, source="pod")}, processes
    ).generators

    assert generator.busy == pytest.approx(0.25)
    assert generator.cpu_s == 2.5


def test_what_the_runner_measured_comes_before_what_the_process_reported() -> None:
    report = {"generator": "standalone", "role": "standalone", "cpu": [[FIRST_AT, 0.0], [LAST_AT, 4.0]]}
    measured = (CpuSample(at=FIRST_AT, cpu_s=1.0), CpuSample(at=LAST_AT, cpu_s=2.0))
    processes = (
        ProcessOutcome(
            role="standalone", generator="standalone", exit_code=0, cpu_s=2.2, cpu_samples=measured
        ),
    )

    (generator,) = _build(
        _spec(), {"standalone": account_from_report(report, source="s")}, processes
    ).generators

    assert (generator.cpu_s, generator.busy) == (2.2, pytest.approx(0.25))


def test_a_worker_that_reported_before_the_last_request_of_another_is_still_measured() -> None:
    early = {"generator": "worker-a", "role": "worker", "cpu": [[FIRST_AT - 1, 0.0], [LAST_AT - 2, 1.0]]}
    late = {"generator": "worker-b", "role": "worker", "cpu": [[FIRST_AT - 1, 0.0], [LAST_AT + 0.1, 3.0]]}
    processes = (
        ProcessOutcome(role="master", generator="master", exit_code=0),
        ProcessOutcome(role="worker", generator="worker-a", exit_code=0),
        ProcessOutcome(role="worker", generator="worker-b", exit_code=0),
    )
    accounts = {
        name: account_from_report(r, source=name) for name, r in (("worker-a", early), ("worker-b", late))
    }

    _, a, b = _build(_spec(workers=2), accounts, processes).generators

    # worker-a had used 1/3 s of CPU when the window opened and 1 s when it reported, 2 s before
    # worker-b's last request closed the window.
    assert (a.cpu_s, a.busy) == (1.0, pytest.approx((1.0 - 1 / 3) / 4))
    assert b.busy == pytest.approx(3.0 / 5.1)  # its samples cover the window: used as they are
