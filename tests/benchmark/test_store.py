"""Saving and loading benchmark records under the reports dir, and the errors a person sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_meshcheck.benchmark import store
from pytest_meshcheck.benchmark.record import SCHEMA, BenchmarkRecord
from pytest_meshcheck.errors import ConfigError

from .records import record


def test_a_saved_record_loads_back_identical_under_its_name(tmp_path: Path) -> None:
    original = record(saturated=True)
    path = store.save(original, tmp_path, "base")
    assert path == tmp_path / "benchmarks" / "base.json"
    loaded = store.load(tmp_path, "base")
    assert loaded == original.with_name("base")
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA
    assert data["name"] == "base"
    assert data["generator_saturated"] is True
    assert data["load_shape"]["mode"] == "closed-loop"
    assert data["environment"]["istio_version"] == "1.30.3"
    assert data["metrics"]["gateway_p50_ms"] == {"value": 40.0, "resolution": 1.0}
    assert not list(path.parent.glob("*.tmp"))


def test_saving_again_replaces_and_names_are_listed_sorted(tmp_path: Path) -> None:
    store.save(record(), tmp_path, "zeta")
    store.save(record(), tmp_path, "alpha")
    store.save(record({"gateway_rps": 1.0}), tmp_path, "alpha")
    assert store.saved_names(tmp_path) == ["alpha", "zeta"]
    assert store.load(tmp_path, "alpha").metrics["gateway_rps"].value == 1.0


def test_a_missing_baseline_names_the_option_the_name_and_what_exists(tmp_path: Path) -> None:
    store.save(record(), tmp_path, "nightly")
    store.save(record(), tmp_path, "release-1")
    with pytest.raises(ConfigError) as caught:
        store.load(tmp_path, "nighty")
    message = caught.value.message
    assert message.startswith("--meshcheck-benchmark-compare=nighty: no saved benchmark named 'nighty'")
    assert "nightly, release-1" in message
    assert "--meshcheck-benchmark-save=nighty" in message
    assert caught.value.option == "--meshcheck-benchmark-compare"
    assert caught.value.value == "nighty"


def test_with_nothing_saved_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="none yet"):
        store.load(tmp_path / "reports", "base")
    assert store.saved_names(tmp_path / "reports") == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema": "other/9"}', "schema is 'other/9'"),
        (json.dumps({"schema": SCHEMA, "created": "x"}), "malformed benchmark record"),
    ],
)
def test_an_unusable_file_is_a_config_error_that_says_why(tmp_path: Path, content: str, why: str) -> None:
    path = store.baseline_path(tmp_path, "base")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ConfigError, match=why):
        store.load(tmp_path, "base")


def test_a_record_without_optional_parts_still_loads() -> None:
    minimal = {
        "schema": SCHEMA,
        "created": "2025-01-01T00:00:00+00:00",
        "load_shape": {"mode": "constant-rate", "users": 2, "duration_s": 10, "target_rps": 20},
        "metrics": {"gateway_p50_ms": 12.5},
    }
    loaded = BenchmarkRecord.from_json(minimal)
    assert loaded.metrics["gateway_p50_ms"].value == 12.5
    assert loaded.load_shape.target_rps == 20.0
    assert loaded.generators == {}
    assert not loaded.generator_saturated
