"""The benchmark's load measurement against a counting target on loopback (real Locust runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_meshcheck.benchmark.load_shapes import measure_target, shape_from_settings
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.settings import Settings, default_settings
from tests.load.target import Target, serve


@pytest.fixture
def target() -> Iterator[Target]:
    with serve(Target()) as running:
        yield running


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    values = {
        "load_users": "2",
        "load_spawn_rate": "1",
        "benchmark_duration": "2s",
        "benchmark_warmup": "1s",
        "reports_dir": str(tmp_path / "reports"),
    }
    values.update(overrides)
    return default_settings(**values)


def test_the_warm_up_is_served_but_not_counted_and_only_productpage_is_requested(
    target: Target, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    measured = measure_target(settings, target.url, label="gateway")
    result = measured.result
    assert result.requests > 0
    assert set(target.by_path) == {"/productpage"}
    assert target.total > result.requests, (
        "the warm-up's requests reached the target but are not in the result"
    )
    assert result.mode == "closed-loop"
    assert result.users == 2
    locust = tmp_path / "reports" / "locust"
    assert (locust / "benchmark-gateway-warmup").is_dir()
    assert (locust / "benchmark-gateway").is_dir()
    metrics = measured.metrics("gateway")
    assert set(metrics) == {"gateway_rps", "gateway_p50_ms", "gateway_p90_ms", "gateway_p99_ms"}
    assert metrics["gateway_p50_ms"].resolution == 1.0  # a loopback answer: well below 100 ms
    note = measured.generator()
    assert note.requests == result.requests
    assert note.failures == 0
    assert note.saturated is result.generator_saturated


def test_failing_requests_make_the_numbers_meaningless_and_fail_the_check(
    target: Target, tmp_path: Path
) -> None:
    target.pages["/productpage"] = (503, "text/plain", b"no healthy upstream")
    with pytest.raises(CheckFailed, match=r"more than --meshcheck-max-error-rate 1\.0%.*status 503"):
        measure_target(_settings(tmp_path), target.url, label="bypass")


def test_the_load_shape_comes_from_the_load_and_benchmark_options(tmp_path: Path) -> None:
    shape = shape_from_settings(_settings(tmp_path, load_rps="30", load_workers="2"))
    assert shape.mode == "constant-rate"
    assert shape.target_rps == 30.0
    assert shape.workers == 2
    assert (shape.duration_s, shape.warmup_s) == (2.0, 1.0)
    assert shape.request == "GET /productpage"
    assert shape_from_settings(_settings(tmp_path)).mode == "closed-loop"
