"""Reading Locust's output: recorded CSV samples in Locust's layout, its JSON, our final accounts."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.cpu import CpuSample
from pytest_meshcheck.load.locust_output import (
    account_from_report,
    exceptions_from_csv,
    failures_from_csv,
    final_account,
    history_from_csv,
    percentile_ms,
    stats_from_csv,
    stats_from_json,
    write_history_csv,
)
from pytest_meshcheck.load.results import FailureEvent, TimelineSecond
from pytest_meshcheck.load.spec import report_plugin_path
from pytest_meshcheck.load.timeline import MergedTimeline, merge_accounts

DATA = Path(__file__).parent / "data"


def test_stats_csv_gives_endpoints_and_the_aggregated_row() -> None:
    table = stats_from_csv(DATA / "recorded_stats.csv")

    assert [e.name for e in table.endpoints] == ["/api/v1/products", "/productpage", "/unused"]
    page = table.endpoints[1]
    assert (page.method, page.requests, page.failures) == ("GET", 960, 12)
    assert (page.latency.p50_ms, page.latency.p90_ms, page.latency.p95_ms, page.latency.p99_ms) == (
        45,
        74,
        110,
        900,
    )
    assert page.latency.max_ms == 1210.4
    assert page.error_rate == pytest.approx(0.0125)
    unused = table.endpoints[2]
    assert unused.requests == 0
    assert unused.latency.p95_ms == 0.0
    assert unused.error_rate == 0.0

    total = table.total
    assert (total.name, total.method, total.requests, total.failures) == ("Aggregated", "", 1080, 12)
    assert total.rps == 36.0
    assert total.latency.p95_ms == 100
    assert table.measured_s == pytest.approx(30.0)


def test_stats_csv_without_aggregated_row_is_a_load_error(tmp_path: Path) -> None:
    header = (DATA / "recorded_stats.csv").read_text().splitlines()[0]
    truncated = tmp_path / "locust_stats.csv"
    truncated.write_text(header + "\n")

    with pytest.raises(LoadError, match="no Aggregated row"):
        stats_from_csv(truncated)


def test_a_file_that_is_not_locust_output_is_a_load_error(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")

    with pytest.raises(LoadError, match="does not look like"):
        stats_from_csv(other)
    with pytest.raises(LoadError, match="does not look like"):
        failures_from_csv(other)


def test_history_keeps_the_aggregated_series_only() -> None:
    history = history_from_csv(DATA / "recorded_stats_history.csv")

    assert [p.at for p in history] == [1795647029, 1795647030, 1795647031]
    assert [p.users for p in history] == [0, 5, 10]
    assert history[0].p95_ms is None
    assert history[1].rps == 25.5
    assert history[1].failures_per_s == 0.5
    assert history[2].p99_ms == 850
    assert [(p.total_requests, p.total_failures) for p in history] == [(0, 0), (26, 1), (62, 2)]


def test_failures_group_by_kind_most_frequent_first() -> None:
    groups = failures_from_csv(DATA / "recorded_failures.csv")

    assert [g.occurrences for g in groups] == [9, 3]
    assert groups[0].error.startswith("HTTPError('503")
    assert groups[1].error == "CatchResponseError(\"200 without the 'Simple Bookstore App' title\")"
    assert {(g.method, g.name) for g in groups} == {("GET", "/productpage")}


def test_failures_csv_of_older_locust_without_seen_columns() -> None:
    (group,) = failures_from_csv(DATA / "recorded_failures_old.csv")
    assert group.error == "ConnectionRefusedError(111, 'Connection refused')"
    assert group.occurrences == 7


def test_exceptions_keep_multiline_tracebacks_and_nodes() -> None:
    (exception,) = exceptions_from_csv(DATA / "recorded_exceptions.csv")

    assert exception.count == 2
    assert exception.message == "KeyError('reviews')"
    assert exception.traceback.splitlines()[-1] == "KeyError: 'reviews'"
    assert exception.nodes == ("worker-a_1234", "worker-b_5678")


def test_json_stats_rebuild_the_aggregated_row() -> None:
    table = stats_from_json(DATA / "recorded.json")

    assert [e.name for e in table.endpoints] == ["/api/v1/products", "/productpage"]
    total = table.total
    assert (total.requests, total.failures) == (20, 2)
    assert table.measured_s == 4.0
    assert (table.first_at, table.last_at) == (1795647029.0, 1795647033.0)
    assert total.rps == 5.0
    assert total.latency.avg_ms == 55.0
    assert (total.latency.min_ms, total.latency.max_ms) == (5.0, 310.2)
    assert (total.latency.p50_ms, total.latency.p90_ms, total.latency.p95_ms, total.latency.p99_ms) == (
        20,
        110,
        310,
        310,
    )
    assert total.avg_content_bytes == 2700.0
    page = table.endpoints[1]
    assert (page.requests, page.failures, page.rps, page.latency.p50_ms) == (10, 2, 2.5, 40)


def test_unreadable_json_is_a_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "locust.json"
    broken.write_text("{not json")
    with pytest.raises(LoadError, match="JSON stats"):
        stats_from_json(broken)


def test_final_account_of_a_master_has_failures_and_exceptions_but_no_requests() -> None:
    account = final_account(DATA / "final-master.json")

    assert (account.generator, account.role) == ("master", "master")
    assert account.requests_made is None
    assert account.errors is not None
    assert [(g.name, g.occurrences) for g in account.errors] == [("/b", 9), ("/a", 4)]
    assert account.exceptions is not None
    assert account.exceptions[0].nodes == ("w1",)


def test_final_account_of_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "final-worker-1.json"
    path.write_text(
        json.dumps({"generator": "worker-1", "role": "worker", "requests_made": 7, "failures_made": 1})
    )

    account = final_account(path)
    assert (account.requests_made, account.failures_made) == (7, 1)
    assert account.errors is None


def test_percentiles_agree_with_locusts_own_function() -> None:
    """Checked against Locust itself, in a child process (Locust never loads into pytest)."""
    rng = random.Random(6)
    cases = []
    for _ in range(40):
        histogram = {
            rng.choice([1, 5, 9, 40, 99, 120, 350, 1200, 4100]): rng.randint(1, 30) for _ in range(6)
        }
        share = rng.choice([0.5, 0.66, 0.9, 0.95, 0.99, 0.999, 1.0])
        cases.append((histogram, sum(histogram.values()), share))
    program = (
        "import json, sys\n"
        "from locust.stats import calculate_response_time_percentile as p\n"
        "cases = json.load(sys.stdin)\n"
        "print(json.dumps([p({int(k): v for k, v in h.items()}, n, s) for h, n, s in cases]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected = json.loads(done.stdout)

    assert [percentile_ms(h, n, s) for h, n, s in cases] == expected


# -- timelines and failure events ------------------------------------------------------------------


def _worker_report(
    generator: str, timeline: list[list[int]], events: list[list[object]], dropped: int = 0
) -> dict[str, object]:
    return {
        "generator": generator,
        "role": "worker",
        "requests_made": sum(row[1] for row in timeline),
        "failures_made": sum(row[2] for row in timeline),
        "timeline": timeline,
        "failure_events": events,
        "failure_events_dropped": dropped,
    }


def test_worker_timelines_are_summed_per_second_and_failures_merged_by_time() -> None:
    one = account_from_report(
        _worker_report(
            "worker-1", [[100, 5, 1], [101, 4, 0]], [[100.5, "/a", "GET", "status 500"]], dropped=3
        ),
        source="w1",
    )
    two = account_from_report(
        _worker_report(
            "worker-2", [[101, 6, 2], [102, 1, 0]], [[101.2, "/b", "GET", "e"], [100.1, "/a", "GET", "e"]]
        ),
        source="w2",
    )
    master = account_from_report({"generator": "master", "role": "master", "errors": []}, source="m")

    merged = merge_accounts([master, two, one], generators=2)

    assert [(s.at, s.requests, s.failures) for s in merged.timeline] == [
        (100, 5, 1),
        (101, 10, 2),
        (102, 1, 0),
    ]
    assert [(e.at, e.name) for e in merged.failure_events] == [(100.1, "/a"), (100.5, "/a"), (101.2, "/b")]
    assert merged.failure_events[1] == FailureEvent(at=100.5, name="/a", method="GET", error="status 500")
    assert merged.failure_events_dropped == 3


def test_a_missing_worker_account_gives_no_timeline_rather_than_a_short_one() -> None:
    one = account_from_report(_worker_report("worker-1", [[100, 5, 1]], []), source="w1")

    assert merge_accounts([one], generators=2) == MergedTimeline()
    assert merge_accounts([one], generators=1).timeline == (TimelineSecond(at=100, requests=5, failures=1),)


def test_a_report_from_before_timelines_still_reads() -> None:
    account = final_account(DATA / "final-master.json")

    assert account.timeline is None and account.failure_events is None
    assert account.failure_events_dropped == 0


def test_a_malformed_timeline_is_a_load_error() -> None:
    report = _worker_report("w", [[1, 2, 0]], [])
    report["timeline"] = [[1, 2]]
    with pytest.raises(LoadError, match="final account bad"):
        account_from_report(report, source="bad")


def test_report_plugin_keeps_the_first_failure_events_and_counts_the_rest(tmp_path: Path) -> None:
    program = f"""
import json, sys
sys.path.insert(0, {str(report_plugin_path().parent)!r})
import _meshcheck_report as plugin
for n in range(plugin.MAX_FAILURE_EVENTS + 7):
    plugin._count(request_type="GET", name="/x", response_time=1.0,
                  exception=RuntimeError("boom " + "x" * 1000), start_time=1000.0 + n / 1000)
plugin._count(request_type="GET", name="/y", response_time=250.0, exception=None)
print(json.dumps({{"events": plugin._failure_events[:2], "kept": len(plugin._failure_events),
                  "made": plugin._made, "timeline": sorted(plugin._timeline.items())[:3]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])

    assert data["kept"] == 2000
    assert data["made"] == {"requests": 2008, "failures": 2007, "failure_events_dropped": 7}
    first = data["events"][0]
    assert first[:3] == [1000.0, "/x", "GET"]
    assert first[3].startswith("RuntimeError('boom xxx") and len(first[3]) == 300
    assert data["timeline"][0] == [1000, [1000, 1000]]


# -- what a pod prints instead of files --------------------------------------------------------------


def test_a_printed_history_reads_back_like_locusts_own_csv(tmp_path: Path) -> None:
    recorded = (DATA / "recorded_stats_history.csv").read_text().splitlines()
    columns = recorded[0].split(",")
    percentiles = [43, 49, 54, 57, 70, 95, 300, 700, 900, 900, 900]
    rows: list[list[object]] = [
        [1795647029, 0, "", "Aggregated", 0.0, 0.0, *["N/A"] * 11, 0, 0, 0, 0.0, 0, 0, 0],
        [1795647030, 5, "", "Aggregated", 25.5, 0.5, *percentiles, 26, 1, 43, 47.9, 4.1, 900.0, 4700.0],
    ]
    path = tmp_path / "locust_stats_history.csv"

    assert write_history_csv({"history_columns": columns, "history": rows}, path, source="pod m")

    assert history_from_csv(path) == history_from_csv(DATA / "recorded_stats_history.csv")[:2]
    assert not write_history_csv({"generator": "w", "role": "worker"}, tmp_path / "none.csv", source="w")
    assert not (tmp_path / "none.csv").exists()


def test_a_printed_history_row_that_does_not_fit_its_columns_is_a_load_error(tmp_path: Path) -> None:
    report = {"history_columns": ["Timestamp", "User Count"], "history": [[1, 2], [3]]}

    with pytest.raises(LoadError, match="pod m"):
        write_history_csv(report, tmp_path / "h.csv", source="pod m")


def test_a_pods_own_cpu_samples_are_read_in_time_order() -> None:
    report = {"generator": "w", "role": "worker", "cpu": [[12.0, 3.5], [10.0, 1.0], [11.0, 2.0]]}

    account = account_from_report(report, source="w")

    assert account.cpu == (
        CpuSample(at=10.0, cpu_s=1.0),
        CpuSample(at=11.0, cpu_s=2.0),
        CpuSample(at=12.0, cpu_s=3.5),
    )
    assert final_account(DATA / "final-master.json").cpu is None
