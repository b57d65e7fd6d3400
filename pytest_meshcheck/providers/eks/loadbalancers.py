"""Load balancers and security groups that Kubernetes made for the cluster's Services.

They are not ours (no run tag) but they are the cluster's: the in-tree cloud provider tags them
``kubernetes.io/cluster/<name>`` and the AWS Load Balancer Controller ``elbv2.k8s.aws/cluster``.
They hold ENIs in the VPC's subnets, so the VPC cannot go until they do. Kubernetes deletes them
when their Services are deleted; we wait for that while the cluster lives, and delete what is left
ourselves once the cluster (and with it the controller that might recreate them) is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.errors import ReadinessTimeout
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import aws_errors, tolerate_not_found
from pytest_meshcheck.providers.eks.timing import Timing
from pytest_meshcheck.providers.eks.vpc import delete_security_groups

EKS_CLUSTER_NAME_TAG = "aws:eks:cluster-name"
_BATCH = 20  # describe_tags takes at most 20 names/ARNs


@dataclass(frozen=True)
class ClusterLoadBalancers:
    v2_arns: tuple[str, ...]
    classic_names: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.v2_arns or self.classic_names)


def _belongs(tags: dict[str, str], cluster: str) -> bool:
    return T.K8S_CLUSTER_PREFIX + cluster in tags or tags.get(T.LB_CONTROLLER_CLUSTER) == cluster


def _skip_group(tags: dict[str, str], cluster: str) -> bool:
    return T.K8S_CLUSTER_PREFIX + cluster not in tags or EKS_CLUSTER_NAME_TAG in tags


def find(elbv2: Any, elb: Any, cluster: str) -> ClusterLoadBalancers:
    v2: list[str] = []
    classic: list[str] = []
    with aws_errors("listing load balancers"):
        arns = [
            lb["LoadBalancerArn"]
            for page in elbv2.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancers"]
        ]
        for i in range(0, len(arns), _BATCH):
            for desc in elbv2.describe_tags(ResourceArns=arns[i : i + _BATCH])["TagDescriptions"]:
                if _belongs(T.from_list(desc.get("Tags")), cluster):
                    v2.append(desc["ResourceArn"])
        names = [
            lb["LoadBalancerName"]
            for page in elb.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancerDescriptions"]
        ]
        for i in range(0, len(names), _BATCH):
            for desc in elb.describe_tags(LoadBalancerNames=names[i : i + _BATCH])["TagDescriptions"]:
                if _belongs(T.from_list(desc.get("Tags")), cluster):
                    classic.append(desc["LoadBalancerName"])
    return ClusterLoadBalancers(tuple(v2), tuple(classic))


def _delete(elbv2: Any, elb: Any, found: ClusterLoadBalancers) -> None:
    for arn in found.v2_arns:
        with tolerate_not_found(f"deleting load balancer {arn}"):
            elbv2.delete_load_balancer(LoadBalancerArn=arn)
    for name in found.classic_names:
        with tolerate_not_found(f"deleting classic load balancer {name}"):
            elb.delete_load_balancer(LoadBalancerName=name)


def _delete_target_groups(elbv2: Any, cluster: str) -> None:
    with aws_errors("listing target groups"):
        arns = [
            tg["TargetGroupArn"]
            for page in elbv2.get_paginator("describe_target_groups").paginate()
            for tg in page["TargetGroups"]
        ]
        owned = []
        for i in range(0, len(arns), _BATCH):
            for desc in elbv2.describe_tags(ResourceArns=arns[i : i + _BATCH])["TagDescriptions"]:
                if _belongs(T.from_list(desc.get("Tags")), cluster):
                    owned.append(desc["ResourceArn"])
    for arn in owned:
        with tolerate_not_found(f"deleting target group {arn}"):
            elbv2.delete_target_group(TargetGroupArn=arn)


def wait_gone(aws_clients: Any, cluster: str, timing: Timing, grace: float) -> str:
    """Give Kubernetes up to ``grace`` to remove the load balancers of deleted Services.

    Never fails: what is still there is removed by ``remove_leftovers`` once the cluster is gone
    (deleting it earlier could race the service controller, which recreates what it manages).
    """
    elbv2, elb = aws_clients.client("elbv2"), aws_clients.client("elb")
    if grace <= 0:
        found = find(elbv2, elb, cluster)
        left = len(found.v2_arns) + len(found.classic_names)
        return f"{left} present; removed after the cluster" if left else "none"
    try:
        timing.poll(
            f"load balancers of {cluster} to be removed by Kubernetes",
            lambda: (not (f := find(elbv2, elb, cluster)), f),
            timeout=grace,
        )
    except ReadinessTimeout as exc:
        return f"still present after {grace:g}s ({exc.last_state}); removed after the cluster"
    return "gone"


def remove_leftovers(aws_clients: Any, cluster: str, timing: Timing) -> list[str]:
    """Delete the cluster's remaining load balancers, target groups and security groups."""
    elbv2, elb, ec2 = aws_clients.client("elbv2"), aws_clients.client("elb"), aws_clients.client("ec2")
    leftovers = find(elbv2, elb, cluster)
    _delete(elbv2, elb, leftovers)
    _delete_target_groups(elbv2, cluster)
    # EKS's own cluster security group carries the same tag; it goes with the cluster.
    groups = delete_security_groups(
        ec2,
        [{"Name": "tag-key", "Values": [T.K8S_CLUSTER_PREFIX + cluster]}],
        timing,
        skip=lambda group: _skip_group(T.from_list(group.get("Tags")), cluster),
    )
    return [*leftovers.v2_arns, *leftovers.classic_names, *groups]
