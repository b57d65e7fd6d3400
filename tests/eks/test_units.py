"""Small pieces: tags and expiry, names, plans, waiter configs, the state file, signal handling."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_meshcheck.errors import ConfigError, ProviderError, ReadinessTimeout
from pytest_meshcheck.providers.eks import state
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws, is_not_found, partition_of
from pytest_meshcheck.providers.eks.naming import Names, new_run_id, valid_cluster_name
from pytest_meshcheck.providers.eks.nodegroup import ami_type
from pytest_meshcheck.providers.eks.plan import EksPlan
from pytest_meshcheck.providers.eks.signals import teardown_on_interrupt
from pytest_meshcheck.providers.eks.timing import Timing

from .support import FakeClock

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_run_tags_expire_after_the_ttl() -> None:
    tags = T.run_tags(run_id="r1", owner="arn:aws:iam::1:user/ci", cluster="gate", created=NOON, ttl_s=7200)
    assert tags[T.EXPIRES_AT] == "2026-03-01T14:00:00Z"
    assert not T.is_expired(tags, NOON + timedelta(hours=1, minutes=59))
    assert T.is_expired(tags, NOON + timedelta(hours=2))


@pytest.mark.parametrize(
    "tags",
    [
        {T.EXPIRES_AT: "2020-01-01T00:00:00Z"},  # no run id: not ours
        {T.RUN_ID: "r1", T.EXPIRES_AT: "yesterday"},  # unreadable: never delete on a guess
        {T.RUN_ID: "r1"},
    ],
)
def test_reaper_never_guesses(tags: dict[str, str]) -> None:
    assert not T.is_expired(tags, NOON)


def test_names_fit_aws_limits_and_differ_per_run() -> None:
    long = "c" * 100
    names = Names(cluster=long, run_id=new_run_id(NOON))
    assert len(names.cluster_role) <= 64 and len(names.node_role) <= 64
    assert len(names.nodegroup) <= 63
    assert len(names.token("cluster0")) <= 64
    assert (
        Names(cluster="gate", run_id=new_run_id(NOON)).cluster_role
        != Names(cluster="gate", run_id=new_run_id(NOON)).cluster_role
    )
    assert new_run_id(NOON).startswith("20260301120000-")
    assert (
        valid_cluster_name("gate-1_a")
        and not valid_cluster_name("-gate")
        and not valid_cluster_name(long + "c")
    )


@pytest.mark.parametrize(
    ("types", "ami"),
    [
        (("m5.large",), "AL2023_x86_64_STANDARD"),
        (("m7g.large", "c6gn.xlarge", "t4g.small"), "AL2023_ARM_64_STANDARD"),
        (("g4dn.xlarge",), "AL2023_x86_64_STANDARD"),
    ],
)
def test_ami_type_follows_the_instance_architecture(types: tuple[str, ...], ami: str) -> None:
    assert ami_type(types) == ami


def test_mixed_architectures_are_refused() -> None:
    with pytest.raises(ProviderError, match="mix"):
        ami_type(("m5.large", "m7g.large"))


def test_plan_validates_before_anything_is_created() -> None:
    with pytest.raises(ConfigError, match="not valid"):
        EksPlan(name="bad name", region="us-east-1")
    with pytest.raises(ConfigError, match="unknown EKS add-on"):
        EksPlan(name="gate", region="us-east-1", addons=("istio",))
    with pytest.raises(ConfigError, match="VPC"):
        EksPlan(name="gate", region="us-east-1", subnets=("subnet-1",))
    plan = EksPlan(name="gate", region="us-east-1", timeout=300)
    assert plan.timeouts.cluster == 1800 and plan.timeouts.nodegroup == 1200


def test_waiter_config_spends_exactly_the_budget() -> None:
    assert Timing(timeout=1800, delay=15).waiter_config() == {"Delay": 15, "MaxAttempts": 120}
    assert Timing(timeout=100, delay=30).waiter_config(61) == {"Delay": 30, "MaxAttempts": 3}


def test_poll_gives_up_at_the_deadline_with_the_last_state() -> None:
    clock = FakeClock()
    timing = Timing(timeout=10, delay=2, monotonic=clock.monotonic, sleep=clock.sleep)
    with pytest.raises(ReadinessTimeout, match="still 3 ELBs"):
        timing.poll("ELBs to go", lambda: (False, 3), describe=lambda n: f"still {n} ELBs")
    assert clock.sleeps == [2] * 5


def test_partitions() -> None:
    assert [partition_of(r) for r in ("us-east-1", "cn-north-1", "us-gov-west-1")] == [
        "aws",
        "aws-cn",
        "aws-us-gov",
    ]


def test_not_found_means_gone_but_validation_errors_only_when_they_say_so() -> None:
    from botocore.exceptions import ClientError

    def err(code: str, message: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, "Op")

    assert is_not_found(err("NoSuchEntity", "x"))
    assert is_not_found(err("ValidationError", "Stack with id s does not exist"))
    assert not is_not_found(err("ValidationError", "bad parameter"))
    assert not is_not_found(err("DependencyViolation", "in use"))


def test_state_round_trip_and_lookup_without_region(tmp_path: Path) -> None:
    record = state.RunRecord(name="gate", region="eu-west-1", run_id="r1", addons=("coredns",))
    state.save(record, tmp_path)
    assert state.load("gate", "eu-west-1", tmp_path) == record
    assert state.load("gate", "", tmp_path) == record
    assert state.load("gate", "us-east-1", tmp_path) is None
    state.forget("gate", "eu-west-1", tmp_path)
    assert state.load("gate", "", tmp_path) is None


def test_missing_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ProviderError, match="no AWS region"):
        Aws(region="").ensure_region()


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_region_comes_from_the_aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv(variable, "eu-central-1")
    aws = Aws(region="")
    assert aws.ensure_region() == "eu-central-1"
    assert aws.client("sts").meta.region_name == "eu-central-1"


def test_unknown_profile_is_a_provider_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ProviderError, match="AWS configuration"):
        Aws(region="us-east-1", profile="nope").ensure_region()


def test_sigterm_runs_teardown_once_and_restores_handlers() -> None:
    calls: list[str] = []
    said: list[str] = []

    def teardown() -> None:
        calls.append("teardown")
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM during teardown is refused
        signal.raise_signal(signal.SIGINT)
        calls.append("finished")

    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), teardown_on_interrupt(teardown, said.append):
        signal.raise_signal(signal.SIGTERM)
    assert calls == ["teardown", "finished"]
    assert len(said) == 2 and all("teardown in progress" in line for line in said)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_normal_exit_runs_no_teardown() -> None:
    calls: list[str] = []
    with teardown_on_interrupt(lambda: calls.append("teardown")):
        pass
    assert calls == []


def test_a_failure_runs_teardown_and_keeps_the_original_error() -> None:
    calls: list[str] = []
    with pytest.raises(ValueError, match="original"), teardown_on_interrupt(lambda: calls.append("t")):
        raise ValueError("original")
    assert calls == ["t"]


def test_plan_takes_every_eks_option_from_the_settings() -> None:
    from pytest_meshcheck.providers.eks.plan import EksPlan
    from pytest_meshcheck.settings import default_settings

    settings = default_settings(
        cluster="eks",
        eks_region="eu-west-1",
        eks_capacity_type="spot",
        eks_addons="vpc-cni,coredns",
        eks_admins="arn:aws:iam::123456789012:role/ci",
        eks_profile="ci",
        eks_nodes="3",
    )
    plan = EksPlan.from_settings(settings, name="meshcheck-x")
    assert plan.capacity_type == "SPOT"
    assert plan.addons == ("vpc-cni", "coredns")
    assert plan.admins == ("arn:aws:iam::123456789012:role/ci",)
    assert plan.profile == "ci"
    assert plan.nodes == 3
