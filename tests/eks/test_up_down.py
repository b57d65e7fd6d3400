"""`meshcheck eks up` then `meshcheck eks down` against a moto server leaves nothing behind."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
import yaml

from pytest_meshcheck.providers.eks import state
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.commands import add_eks_commands

from .inventory import inventory, leftovers
from .support import REGION, FakeClock


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="meshcheck")
    add_eks_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eks", *argv])


def fast(clock: FakeClock) -> dict[str, object]:
    return {"delay": 0.0, "monotonic": clock.monotonic, "sleep": clock.sleep}


def run(args: argparse.Namespace, aws: Aws, clock: FakeClock, **kw: object) -> tuple[int, str]:
    out = io.StringIO()
    code = args.handler(args, aws_factory=lambda region, profile: aws, out=out, **fast(clock), **kw)
    return code, out.getvalue()


@pytest.mark.parametrize("layout", [[], ["--public-only"]], ids=["private-and-public", "public-only"])
def test_up_then_down_leaves_nothing(aws: Aws, clock: FakeClock, tmp_path: Path, layout: list[str]) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    code, out = run(
        parse(
            "up",
            "--name",
            "gate",
            "--region",
            REGION,
            "--ttl",
            "2h",
            "--kubeconfig",
            str(kubeconfig),
            *layout,
        ),
        aws,
        clock,
    )
    assert code == 0, out
    made = inventory(aws)
    assert made["clusters"] == ["gate"]
    assert made["nodegroups"] == ["gate/gate-nodes"]
    assert len(made["vpcs"]) == 1
    assert len(made["subnets"]) == (2 if layout else 4)
    assert len(made["nat_gateways"]) == (0 if layout else 1)
    assert len(made["eips"]) == (0 if layout else 1)
    assert len(made["roles"]) == 2

    cluster_tags = aws.client("eks").describe_cluster(name="gate")["cluster"]["tags"]
    assert cluster_tags[T.CLUSTER] == "gate"
    assert cluster_tags[T.OWNER].startswith("arn:aws:")
    assert T.parse_time(cluster_tags[T.EXPIRES_AT]) is not None
    subnet_tags = [
        T.from_list(s["Tags"])
        for s in aws.client("ec2").describe_subnets(SubnetIds=made["subnets"])["Subnets"]
    ]
    assert all(t[T.RUN_ID] == cluster_tags[T.RUN_ID] for t in subnet_tags)
    assert sum(T.ELB_ROLE in t for t in subnet_tags) == 2
    assert sum(T.INTERNAL_ELB_ROLE in t for t in subnet_tags) == (0 if layout else 2)
    vpc_id = made["vpcs"][0]
    ec2 = aws.client("ec2")
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"][
        "Value"
    ]

    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")
    assert config["users"][0]["user"]["exec"]["args"] == [
        "eks",
        "token",
        "--name",
        "gate",
        "--region",
        REGION,
    ]
    assert (kubeconfig.stat().st_mode & 0o777) == 0o600
    assert state.load("gate", REGION) is not None

    code, out = run(parse("down", "--name", "gate", "--region", REGION), aws, clock)
    assert code == 0, out
    assert leftovers(aws) == {}
    assert state.load("gate", REGION) is None


def test_down_is_idempotent_and_finds_runs_without_the_state_file(
    aws: Aws, clock: FakeClock, tmp_path: Path
) -> None:
    code, out = run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "kc")), aws, clock)
    assert code == 0, out
    state.forget("gate", REGION)  # as if `up` ran on another machine
    code, out = run(parse("down", "--name", "gate", "--region", REGION), aws, clock)
    assert code == 0, out
    assert leftovers(aws) == {}
    code, out = run(parse("down", "--name", "gate", "--region", REGION), aws, clock)
    assert code == 0 and "nothing" in out


def test_up_refuses_a_name_taken_by_another_cluster_and_deletes_only_its_own(
    aws: Aws, clock: FakeClock, tmp_path: Path
) -> None:
    assert run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "a")), aws, clock)[0] == 0
    before = inventory(aws)
    code, out = run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "b")), aws, clock)
    assert code == 1
    assert "already exists" in out
    assert inventory(aws) == before
    assert run(parse("down", "--name", "gate"), aws, clock)[0] == 0
    assert leftovers(aws) == {}


def test_token_command_prints_an_exec_credential(aws: Aws, clock: FakeClock) -> None:
    args = parse("token", "--name", "gate", "--region", REGION)
    out = io.StringIO()
    assert args.handler(args, aws_factory=lambda region, profile: aws, out=out) == 0
    credential = json.loads(out.getvalue())
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert credential["status"]["token"].startswith("k8s-aws-v1.")


def test_an_existing_vpc_is_used_and_never_deleted(aws: Aws, clock: FakeClock, tmp_path: Path) -> None:
    ec2 = aws.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(["us-east-1a", "us-east-1b"])
    ]
    code, out = run(
        parse(
            "up",
            "--name",
            "gate",
            "--vpc",
            vpc_id,
            "--subnets",
            ",".join(subnets),
            "--kubeconfig",
            str(tmp_path / "kc"),
        ),
        aws,
        clock,
    )
    assert code == 0, out
    cluster = aws.client("eks").describe_cluster(name="gate")["cluster"]
    assert sorted(cluster["resourcesVpcConfig"]["subnetIds"]) == sorted(subnets)
    assert inventory(aws)["vpcs"] == [vpc_id]
    assert run(parse("down", "--name", "gate"), aws, clock)[0] == 0
    left = leftovers(aws)
    assert left == {"vpcs": [vpc_id], "subnets": left["subnets"]}
    assert sorted(left["subnets"]) == sorted(subnets)


def test_reap_command_lists_then_deletes_nothing_young(aws: Aws, clock: FakeClock, tmp_path: Path) -> None:
    assert run(parse("up", "--name", "gate", "--kubeconfig", str(tmp_path / "kc")), aws, clock)[0] == 0
    code, out = run(parse("reap", "--region", REGION, "--dry-run"), aws, clock)
    assert (code, out.strip()) == (0, f"no expired meshcheck resources in {REGION}")
    assert inventory(aws)["clusters"] == ["gate"]
    assert run(parse("down", "--name", "gate"), aws, clock)[0] == 0
    assert leftovers(aws) == {}
