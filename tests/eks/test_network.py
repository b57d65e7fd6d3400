"""The VPC against moto: re-planning subnets after EKS rejects a zone, and removing what
Kubernetes' load balancers left in it."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks import vpc
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.naming import Names
from pytest_meshcheck.providers.eks.teardown import Budget, destroy_run
from pytest_meshcheck.providers.eks.timing import Timing

from .inventory import leftovers

NAMES = Names(cluster="gate", run_id="20260101000000-abc123")
TAGS = T.run_tags(
    run_id=NAMES.run_id,
    owner="arn:aws:iam::123456789012:user/ci",
    cluster="gate",
    created=datetime(2026, 1, 1, tzinfo=UTC),
    ttl_s=3600,
)


def test_rezone_keeps_valid_subnets_and_adds_the_missing_zone(aws: Aws, timing: Timing) -> None:
    ec2 = aws.client("ec2")
    network = vpc.create_network(
        ec2, names=NAMES, run_tags=TAGS, timing=timing, public_only=False, zones=["us-east-1a", "us-east-1b"]
    )
    moved = vpc.rezone(ec2, network, ["us-east-1b", "us-east-1c"], names=NAMES, run_tags=TAGS, timing=timing)
    assert sorted(moved.zones[s] for s in moved.public_subnets) == ["us-east-1b", "us-east-1c"]
    assert sorted(moved.zones[s] for s in moved.private_subnets) == ["us-east-1b", "us-east-1c"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])["Subnets"]
    blocks = [ipaddress.ip_network(s["CidrBlock"]) for s in subnets]
    assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    new = {s["SubnetId"]: T.from_list(s["Tags"]) for s in subnets if s["AvailabilityZone"] == "us-east-1c"}
    assert len(new) == 2 and all(t[T.RUN_ID] == NAMES.run_id for t in new.values())
    assert vpc.delete_network(ec2, NAMES.run_id, timing)
    assert leftovers(aws) == {}


@pytest.mark.parametrize("cluster_exists", [True, False], ids=["cluster-ours", "cluster-gone"])
def test_teardown_removes_kubernetes_load_balancers_and_their_security_group(
    aws: Aws, timing: Timing, cluster_exists: bool
) -> None:
    """The Kubernetes side did not (or could not) delete its Service, or the cluster is already gone
    while its load balancer outlived it: AWS-side cleanup takes over."""
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    network = vpc.create_network(
        ec2, names=NAMES, run_tags=TAGS, timing=timing, public_only=True, zones=["us-east-1a", "us-east-1b"]
    )
    group = ec2.create_security_group(
        GroupName="k8s-elb-a1b2",
        Description="made by Kubernetes",
        VpcId=network.vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [{"Key": "kubernetes.io/cluster/gate", "Value": "owned"}],
            }
        ],
    )["GroupId"]
    elbv2.create_load_balancer(
        Name="a1b2",
        Subnets=list(network.public_subnets),
        SecurityGroups=[group],
        Tags=[{"Key": "kubernetes.io/cluster/gate", "Value": "owned"}],
    )
    elbv2.create_load_balancer(Name="not-ours", Subnets=list(network.public_subnets))
    # a bare cluster with the run's tags stands in for the run's own
    role = aws.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    if cluster_exists:
        aws.client("eks").create_cluster(
            name="gate",
            roleArn=role,
            resourcesVpcConfig={"subnetIds": list(network.public_subnets)},
            tags=TAGS,
        )
    log = destroy_run(aws, cluster="gate", run_id=NAMES.run_id, timing=timing, budget=Budget.from_timeout(60))
    names = [lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    assert names == ["not-ours"]
    assert "k8s-elb-a1b2" not in {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    steps = dict(log.steps)
    assert steps["leftover load balancers"].startswith("removed 2")  # the NLB and its security group
    if cluster_exists:
        assert steps["load balancers"] == "1 present; removed after the cluster"
    elbv2.delete_load_balancer(
        LoadBalancerArn=elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    )
    aws.client("iam").delete_role(RoleName="r")
    assert leftovers(aws) == {}
