"""Comparing benchmark runs: the direction of each metric, tolerance, noise floors, warnings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_meshcheck.benchmark.compare import compare, judge
from pytest_meshcheck.benchmark.metrics import BY_NAME, CATALOGUE, MetricValue, spec_of

from .records import HEALTHY, SHAPE, changed, record


def _verdicts(after: dict[str, float], tolerance: float = 25.0) -> dict[str, str]:
    comparison = compare(record(), record(after), tolerance_pct=tolerance, baseline_name="base")
    return {change.spec.name: change.verdict for change in comparison.changes}


def test_comparing_a_run_with_itself_passes_without_warnings() -> None:
    comparison = compare(record(), record(), tolerance_pct=0.0, baseline_name="base")
    assert comparison.ok
    assert comparison.warnings == ()
    verdicts = {change.spec.name: change.verdict for change in comparison.changes}
    assert set(verdicts) == set(HEALTHY)
    assert {verdicts[name] for name in verdicts if BY_NAME[name].judged} == {"ok"}
    assert {verdicts[name] for name in verdicts if not BY_NAME[name].judged} == {"reference"}


def test_every_catalogue_metric_has_a_unit_a_direction_and_a_floor() -> None:
    for spec in CATALOGUE:
        assert spec.unit and spec.title and spec.description, spec
        assert spec.better in ("higher", "lower")
        assert spec.noise_floor > 0
    assert {spec.name for spec in CATALOGUE} == set(HEALTHY)


def test_slower_reviews_is_a_latency_regression_named_with_before_after_change_and_tolerance() -> None:
    # What the lab's slow-reviews fault does: +400 ms on every product page through the mesh.
    slow = changed(
        gateway_p50_ms=440.0, gateway_p90_ms=470.0, gateway_p99_ms=520.0,
        mesh_added_p50_ms=425.0, mesh_added_p90_ms=445.0, mesh_added_p99_ms=470.0, gateway_rps=11.0,
    )  # fmt: skip
    comparison = compare(record(), record(slow), tolerance_pct=25.0, baseline_name="base")
    assert not comparison.ok
    regressed = {change.spec.name for change in comparison.regressions}
    assert regressed == {
        "gateway_rps", "gateway_p50_ms", "gateway_p90_ms", "gateway_p99_ms",
        "mesh_added_p50_ms", "mesh_added_p90_ms", "mesh_added_p99_ms",
    }  # fmt: skip
    message = comparison.failure_message()
    assert "7 benchmark metric(s) regressed beyond the 25% tolerance against baseline 'base'" in message
    assert "gateway p50 latency: 40.0 ms -> 440 ms (+1000.0%, tolerance 25%" in message
    assert "gateway throughput: 80.0 req/s -> 11.0 req/s (-86.2%" in message


def test_direction_matters_higher_throughput_and_lower_latency_are_improvements() -> None:
    verdicts = _verdicts(changed(gateway_rps=160.0, gateway_p50_ms=10.0, convergence_s=0.1))
    assert verdicts["gateway_rps"] == "improved"
    assert verdicts["gateway_p50_ms"] == "improved"
    # 0.8 s -> 0.1 s is -87%, but within convergence's 2 s noise floor: not worth a word.
    assert verdicts["convergence_s"] == "ok"
    assert _verdicts(changed(gateway_rps=40.0))["gateway_rps"] == "regressed"


@pytest.mark.parametrize(
    ("metric", "after", "why"),
    [
        ("gateway_p50_ms", 44.0, "+10% is within the 25% tolerance"),
        ("mesh_added_p50_ms", 29.0, "+16% and 4 ms: within tolerance and floor"),
        ("gateway_p99_ms", 145.0, "+21%: within tolerance"),
        ("convergence_s", 2.5, "+212%, but 1.7 s is within the 2 s floor"),
        ("kiali_lag_s", 17.0, "+55%, but 6 s is within one scrape interval plus a poll (6.5 s)"),
        ("prometheus_lag_s", 11.0, "+83%, but 5 s is below the 5 s floor and the 6.5 s resolution"),
    ],
)
def test_changes_within_tolerance_or_noise_floor_are_not_regressions(
    metric: str, after: float, why: str
) -> None:
    assert _verdicts(changed(**{metric: after}))[metric] == "ok", why


def test_tiny_latencies_need_an_absolute_change_beyond_the_floor() -> None:
    tiny = changed(gateway_p50_ms=3.0, mesh_added_p50_ms=1.0)
    comparison = compare(
        record(tiny), record(changed(gateway_p50_ms=6.0, mesh_added_p50_ms=4.0)), tolerance_pct=25
    )
    verdicts = {change.spec.name: change.verdict for change in comparison.changes}
    assert verdicts["gateway_p50_ms"] == "ok"  # +100%, but 3 ms
    assert verdicts["mesh_added_p50_ms"] == "ok"  # +300%, but 3 ms
    worse = compare(
        record(tiny), record(changed(gateway_p50_ms=12.0, mesh_added_p50_ms=1.0)), tolerance_pct=25
    )
    assert [change.spec.name for change in worse.regressions] == ["gateway_p50_ms"]


def test_a_coarse_measurement_widens_the_floor() -> None:
    spec = spec_of("gateway_p99_ms")
    # Locust rounds latencies above 1 s to 100 ms: a 90 ms step is rounding, not a regression.
    coarse = judge(
        spec, MetricValue(value=1000.0, resolution=100.0), MetricValue(value=1090.0, resolution=100.0), 5.0
    )
    assert coarse.verdict == "ok"
    assert coarse.floor == 100.0


def test_a_negative_added_latency_baseline_is_judged_by_the_floor() -> None:
    spec = spec_of("mesh_added_p50_ms")
    noise = judge(spec, MetricValue(value=-2.0), MetricValue(value=2.5), 25.0)
    assert noise.verdict == "ok"
    real = judge(spec, MetricValue(value=-2.0), MetricValue(value=30.0), 25.0)
    assert real.verdict == "regressed"
    assert judge(spec, MetricValue(value=0.0), MetricValue(value=30.0), 25.0).change_pct is None


def test_reference_metrics_never_regress_but_a_moving_reference_is_a_warning() -> None:
    slower_machine = changed(bypass_p50_ms=60.0, bypass_rps=50.0)
    comparison = compare(record(), record(slower_machine), tolerance_pct=25.0)
    assert comparison.ok
    assert any("the app outside the mesh changed too" in warning for warning in comparison.warnings)
    assert "bypass p50 latency (reference) +300%" in " ".join(comparison.warnings)


def test_other_load_shapes_versions_and_a_saturated_generator_are_warnings_not_failures() -> None:
    other = record(
        shape=replace(SHAPE, users=10, target_rps=50.0),
        environment={**record().environment, "istio_version": "1.31.0", "host_cores": "8"},
        saturated=True,
    )
    comparison = compare(record(), other, tolerance_pct=25.0)
    assert comparison.ok
    text = "\n".join(comparison.warnings)
    assert "load shape differs" in text
    assert "users 5 -> 10" in text
    assert "target_rps None -> 50.0" in text
    assert "istio_version '1.30.3' -> '1.31.0'" in text
    assert "host_cores '2' -> '8'" in text
    assert "in this run the load generator was the bottleneck" in text
    assert "gateway" in text


def test_metrics_missing_on_either_side_are_listed_not_judged() -> None:
    without_lag = {k: v for k, v in HEALTHY.items() if k != "kiali_lag_s"}
    comparison = compare(record(), record({**without_lag, "future_metric": 1.0}), tolerance_pct=25.0)
    verdicts = {change.spec.name: change.verdict for change in comparison.changes}
    assert verdicts["kiali_lag_s"] == "not measured"
    assert verdicts["future_metric"] == "new"
    assert comparison.ok
    assert any(
        "not measured in this run" in warning and "Kiali edge lag" in warning
        for warning in comparison.warnings
    )


def test_a_metric_this_version_does_not_know_is_still_compared_conservatively() -> None:
    baseline = record({**HEALTHY, "future_ms": 10.0})
    comparison = compare(baseline, record({**HEALTHY, "future_ms": 30.0}), tolerance_pct=25.0)
    assert [change.spec.name for change in comparison.regressions] == ["future_ms"]


def test_comparison_json_lists_regressions_and_every_metric() -> None:
    comparison = compare(
        record(), record(changed(gateway_p90_ms=300.0)), tolerance_pct=10.0, baseline_name="b"
    )
    data = comparison.to_json()
    assert data["ok"] is False
    assert data["regressed"] == ["gateway_p90_ms"]
    assert data["metrics"]["gateway_p90_ms"] == {
        "before": 70.0, "after": 300.0, "unit": "ms", "change_pct": 328.57, "verdict": "regressed",
    }  # fmt: skip
