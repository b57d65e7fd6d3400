"""A run stopped at any provisioning step leaves nothing behind after teardown or reap."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.plan import EksPlan
from pytest_meshcheck.providers.eks.provisioner import STEPS, Provisioner
from pytest_meshcheck.providers.eks.reaper import reap
from pytest_meshcheck.providers.eks.timing import Timing

from .inventory import leftovers
from .support import REGION, FakeClock
from .test_up_down import parse, run


class Stop(Exception):
    """The injected crash."""


def stop_after(target: str, exc: BaseException) -> Any:
    def hook(step: str) -> None:
        if step == target:
            raise exc

    return hook


@pytest.mark.parametrize("step", STEPS)
def test_ctrl_c_after_each_step_tears_everything_down(
    aws: Aws, clock: FakeClock, tmp_path: Path, step: str
) -> None:
    args = parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "kc"), "--addons", "")
    with pytest.raises(KeyboardInterrupt):
        run(args, aws, clock, after_step=stop_after(step, KeyboardInterrupt()))
    assert leftovers(aws) == {}


@pytest.mark.parametrize("step", ["network"])
def test_sigterm_during_provisioning_tears_everything_down(
    aws: Aws, clock: FakeClock, tmp_path: Path, step: str
) -> None:
    def hook(done: str) -> None:
        if done == step:
            signal.raise_signal(signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "kc")), aws, clock, after_step=hook)
    assert leftovers(aws) == {}
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize(
    ("service", "operation"),
    [("iam", "attach_role_policy"), ("ec2", "create_nat_gateway"), ("eks", "create_nodegroup")],
)
def test_interrupted_inside_a_step_right_after_a_create(
    aws: Aws, clock: FakeClock, tmp_path: Path, service: str, operation: str
) -> None:
    client = aws.client(service)
    real = getattr(client, operation)

    def create_then_die(**kwargs: Any) -> Any:
        real(**kwargs)
        raise KeyboardInterrupt(f"after {operation}")

    setattr(client, operation, create_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "kc")), aws, clock)
    assert leftovers(aws) == {}


def crash_after(aws: Aws, timing: Timing, step: str, tmp_path: Path, name: str = "gate") -> None:
    plan = EksPlan(name=name, region=REGION, ttl=3600.0, kubeconfig=tmp_path / f"{name}.kc")
    provisioner = Provisioner(
        aws,
        plan,
        run_id=f"20260101000000-{abs(hash(name)) % 0xFFFFFF:06x}",
        timing=timing,
        after_step=stop_after(step, Stop()),
    )
    with pytest.raises(Stop):
        provisioner.run()


def test_crash_after_preflight_leaves_nothing_to_reap(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    crash_after(aws, timing, "preflight", tmp_path)
    assert leftovers(aws) == {}
    assert (
        reap(REGION, False, aws=aws, timing=timing, now=lambda: datetime.now(UTC) + timedelta(days=1)) == []
    )


@pytest.mark.parametrize("step", STEPS[1:])
def test_crash_after_each_step_is_reaped_once_expired(
    aws: Aws, timing: Timing, tmp_path: Path, step: str
) -> None:
    crash_after(aws, timing, step, tmp_path)
    left = leftovers(aws)
    assert left.get("roles"), "the crash must leave resources for this test to mean anything"

    before_expiry = datetime.now(UTC) + timedelta(minutes=30)
    assert reap(REGION, False, aws=aws, timing=timing, now=lambda: before_expiry) == []
    assert leftovers(aws) == left

    after_expiry = datetime.now(UTC) + timedelta(hours=2)
    planned = reap(REGION, True, aws=aws, timing=timing, now=lambda: after_expiry)
    assert [r.outcome for r in planned] == ["would delete"]
    assert planned[0].cluster == "gate"
    assert leftovers(aws) == left

    reaped = reap(REGION, False, aws=aws, timing=timing, now=lambda: after_expiry)
    assert [r.outcome for r in reaped] == ["deleted"]
    assert leftovers(aws) == {}


@pytest.mark.parametrize("step", ["network", "kubeconfig"])
def test_crash_then_down_by_name_without_state(
    aws: Aws, timing: Timing, clock: FakeClock, tmp_path: Path, step: str
) -> None:
    crash_after(aws, timing, step, tmp_path)
    code, out = run(parse("down", "--name", "gate", "--region", REGION), aws, clock)
    assert code == 0, out
    assert leftovers(aws) == {}


def test_reap_deletes_only_expired_runs(aws: Aws, tmp_path: Path, clock: FakeClock) -> None:
    timing = Timing(timeout=60.0, delay=0.0, monotonic=clock.monotonic, sleep=clock.sleep)
    crash_after(aws, timing, "kubeconfig", tmp_path, name="old")
    code, _ = run(
        parse("up", "--name", "young", "--ttl", "10h", "--kubeconfig", str(tmp_path / "y")), aws, clock
    )
    assert code == 0
    reaped = reap(REGION, False, aws=aws, timing=timing, now=lambda: datetime.now(UTC) + timedelta(hours=2))
    assert [(r.cluster, r.outcome) for r in reaped] == [("old", "deleted")]
    assert aws.client("eks").list_clusters()["clusters"] == ["young"]
    assert run(parse("down", "--name", "young"), aws, clock)[0] == 0
    assert leftovers(aws) == {}
