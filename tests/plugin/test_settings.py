"""The option table and its resolver, without pytest in the loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_meshcheck.errors import ConfigError
from pytest_meshcheck.settings import (
    OPTIONS,
    SUITES,
    Settings,
    default_settings,
    parse_duration,
    parse_rate,
    resolve,
)


def test_every_option_has_three_spellings_derived_from_one_name() -> None:
    for opt in OPTIONS:
        suffix = opt.name
        assert opt.cli == ("--meshcheck-" + suffix if suffix else "--meshcheck")
        assert opt.ini == ("meshcheck_" + suffix.replace("-", "_") if suffix else "meshcheck")
        assert opt.env == ("MESHCHECK_" + suffix.replace("-", "_").upper() if suffix else "MESHCHECK")
    assert len({opt.cli for opt in OPTIONS}) == len(OPTIONS)


def test_defaults_parse_and_are_reported_as_defaults() -> None:
    settings = default_settings()
    assert settings.enabled is False
    assert settings.cluster == "lab"
    assert settings.suites == SUITES
    assert settings.timeout == 300.0
    assert settings.max_error_rate == pytest.approx(0.01)
    assert settings.reports_dir == Path("reports")
    assert all(settings.source_of(opt.field) == "default" for opt in OPTIONS)


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected", "source"),
    [
        ("1.26.3", "1.25.0", "1.24.0", "1.26.3", "cli"),
        (None, "1.25.0", "1.24.0", "1.25.0", "env"),
        (None, None, "1.24.0", "1.24.0", "ini"),
        (None, None, None, "1.30.3", "default"),
    ],
)
def test_precedence_cli_env_ini_default(
    cli: str | None, env: str | None, ini: str | None, expected: str, source: str
) -> None:
    settings = resolve(
        cli={"istio_version": cli},
        env={} if env is None else {"MESHCHECK_ISTIO_VERSION": env},
        ini={"istio_version": ini},
    )
    assert settings.istio_version == expected
    assert settings.source_of("istio_version") == source


def test_empty_env_value_counts_as_set() -> None:
    # MESHCHECK_CONTEXT= (empty) is a deliberate override of an ini value, as with most tools.
    settings = resolve(cli={}, env={"MESHCHECK_CONTEXT": ""}, ini={"context": "prod"})
    assert settings.context == ""
    assert settings.source_of("context") == "env"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5m", 90.0)],
)
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["", "0", "-5", "5x", "m5", "5m3", "1h 2m"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


@pytest.mark.parametrize(("raw", "value"), [("1%", 0.01), ("0.001", 0.001), ("0.1%", 0.001), ("0", 0.0)])
def test_rates(raw: str, value: float) -> None:
    assert parse_rate(raw) == pytest.approx(value)


def test_suites_are_canonicalised() -> None:
    assert default_settings(suites="gateway, injection").suites == ("injection", "gateway")
    assert default_settings(suites="none").suites == ()
    assert default_settings(suites="ALL").suites == SUITES


def test_error_names_option_sources_value_and_accepted() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(cli={}, env={"MESHCHECK_LOAD_USERS": "many"}, ini={})
    message = info.value.message
    for fragment in (
        "--meshcheck-load-users",
        "MESHCHECK_LOAD_USERS",
        "meshcheck_load_users",
        "'many'",
        "from env",
    ):
        assert fragment in message
    assert "whole number" in message


def test_settings_round_trip_through_json() -> None:
    original = resolve(
        cli={"cluster": "kubeconfig", "suites": "mtls"}, env={"MESHCHECK_P95_MS": "250"}, ini={}
    )
    copy = Settings.from_json(original.to_json())
    assert copy == original
    assert copy.source_of("p95_ms") == "env"


def test_settings_are_frozen() -> None:
    settings = default_settings()
    with pytest.raises(AttributeError):
        settings.cluster = "eks"  # type: ignore[misc]


def test_install_method_auto_depends_on_provider() -> None:
    assert default_settings().install_method == "manifest"
    assert default_settings(cluster="eks").install_method == "istioctl"
    assert default_settings(cluster="eks", install="helm").install_method == "helm"
