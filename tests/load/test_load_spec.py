"""LoadSpec: built from the settings, validated, and turned into the locustfile contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.spec import (
    CLOSED_LOOP,
    CONSTANT_RATE,
    ENV_GENERATOR,
    ENV_HOST_HEADER,
    ENV_THINK_TIME,
    ENV_USER_RATE,
    LoadSpec,
    shipped_locustfile,
    spec_from_settings,
)
from pytest_meshcheck.settings import default_settings


def _spec(**overrides: object) -> LoadSpec:
    values: dict[str, object] = {
        "target_url": "http://127.0.0.1:8080/",
        "users": 4,
        "spawn_rate": 2.0,
        "duration_s": 2.5,
        "locustfile": Path("x.py"),
        "output_dir": Path("out"),
    }
    values.update(overrides)
    return LoadSpec(**values)  # type: ignore[arg-type]


def test_spec_from_settings_takes_the_load_options(tmp_path: Path) -> None:
    settings = default_settings(
        load_users="6",
        load_spawn_rate="3",
        load_duration="45s",
        load_workers="2",
        load_rps="30",
        reports_dir=str(tmp_path / "reports"),
    )
    spec = spec_from_settings(settings, "http://127.0.0.1:31380", host_header="bookinfo.example")

    assert (spec.users, spec.spawn_rate, spec.duration_s, spec.workers) == (6, 3.0, 45.0, 2)
    assert spec.rps == 30.0
    assert spec.mode == CONSTANT_RATE
    assert spec.per_user_rate == 5.0
    assert spec.host_header == "bookinfo.example"
    assert spec.output_dir == tmp_path / "reports" / "locust" / "load"
    assert spec.locustfile == shipped_locustfile("bookinfo.py").resolve()
    assert spec.locustfile.is_file()


def test_spec_from_settings_prefers_the_users_locustfile(tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    settings = default_settings(locustfile=str(mine))
    spec = spec_from_settings(settings, "http://127.0.0.1:1", run_name="graph", duration_s=120)

    assert spec.locustfile == mine.resolve()
    assert spec.duration_s == 120
    assert spec.mode == CLOSED_LOOP
    assert spec.per_user_rate is None
    assert spec.output_dir.name == "graph"


def test_closed_loop_env_has_think_time_and_no_rate() -> None:
    env = _spec(think_time_s=0.5, env={ENV_USER_RATE: "stale", "EXTRA": "1"}).locust_env("worker-2")

    assert env[ENV_GENERATOR] == "worker-2"
    assert float(env[ENV_THINK_TIME]) == 0.5
    assert ENV_USER_RATE not in env
    assert ENV_HOST_HEADER not in env
    assert env["EXTRA"] == "1"


def test_constant_rate_env_paces_each_user_at_its_share() -> None:
    env = _spec(rps=10.0, users=4, host_header="h.example").locust_env("standalone")

    assert float(env[ENV_USER_RATE]) == 2.5
    assert env[ENV_HOST_HEADER] == "h.example"


def test_run_time_is_whole_seconds_never_rounded_to_nothing() -> None:
    assert _spec(duration_s=2.5).run_time_s == 3
    assert _spec(duration_s=0.2).run_time_s == 1


def test_target_url_loses_its_trailing_slash_and_env_is_read_only() -> None:
    spec = _spec(env={"A": "1"})
    assert spec.target_url == "http://127.0.0.1:8080"
    with pytest.raises(TypeError):
        spec.env["B"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"target_url": "127.0.0.1:80"}, "target_url"),
        ({"users": 0}, "users"),
        ({"workers": -1}, "workers"),
        ({"spawn_rate": 0.0}, "spawn_rate"),
        ({"duration_s": float("inf")}, "duration_s"),
        ({"rps": 0.0}, "rps"),
        ({"think_time_s": -1.0}, "think_time_s"),
    ],
)
def test_invalid_specs_are_load_errors(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(LoadError, match=fragment):
        _spec(**overrides)
