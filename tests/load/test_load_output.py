"""Reading Locust's output: recorded CSV samples in Locust's layout, its JSON, our final accounts."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.locust_output import (
    exceptions_from_csv,
    failures_from_csv,
    final_account,
    history_from_csv,
    percentile_ms,
    stats_from_csv,
    stats_from_json,
)

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
