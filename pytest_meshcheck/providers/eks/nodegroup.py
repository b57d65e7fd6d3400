"""The managed node group: one per run, in the private subnets (public ones when public-only)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.eks.aws import aws_errors, error_code, is_not_found
from pytest_meshcheck.providers.eks.timing import Timing, wait

#: Graviton (arm64) families carry a ``g`` right after the generation: m7g, c6gn, t4g, r8gd.
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.")


def ami_type(instance_types: Sequence[str]) -> str:
    """The AL2023 AMI matching the instances' architecture (a node group has only one)."""
    arm = [t for t in instance_types if _GRAVITON.match(t)]
    if arm and len(arm) != len(instance_types):
        raise ProviderError(f"instance types mix arm64 and x86_64: {', '.join(instance_types)}")
    return "AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD"


def create(
    eks: Any,
    *,
    cluster: str,
    name: str,
    node_role_arn: str,
    subnets: Sequence[str],
    instance_types: Sequence[str],
    nodes: int,
    capacity_type: str,
    tags: Mapping[str, str],
    token: str,
    timing: Timing,
    timeout: float,
) -> None:
    from botocore.exceptions import ClientError

    with aws_errors(f"creating node group {name}"):
        try:
            eks.create_nodegroup(
                clusterName=cluster,
                nodegroupName=name,
                scalingConfig={"minSize": nodes, "maxSize": nodes, "desiredSize": nodes},
                subnets=list(subnets),
                instanceTypes=list(instance_types),
                amiType=ami_type(instance_types),
                capacityType=capacity_type,
                nodeRole=node_role_arn,
                tags=dict(tags),
                labels={"meshcheck/run": "true"},
                clientRequestToken=token,
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
        wait(
            eks.get_waiter("nodegroup_active"),
            timing,
            f"node group {name} to become ACTIVE",
            timeout,
            clusterName=cluster,
            nodegroupName=name,
        )


def delete_all(eks: Any, cluster: str, timing: Timing, timeout: float) -> list[str]:
    """Delete every node group of ``cluster`` (they block the cluster's deletion) and wait."""
    from botocore.exceptions import ClientError

    names: list[str] = []
    with aws_errors(f"listing node groups of {cluster}"):
        try:
            for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
                names += page["nodegroups"]
        except ClientError as exc:
            if is_not_found(exc):
                return []
            raise
    for name in names:
        with aws_errors(f"deleting node group {name}"):
            try:
                eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
            except ClientError as exc:
                if not is_not_found(exc) and error_code(exc) != "ResourceInUseException":
                    raise
    for name in names:
        wait(
            eks.get_waiter("nodegroup_deleted"),
            timing,
            f"node group {name} deletion",
            timeout,
            clusterName=cluster,
            nodegroupName=name,
        )
    return names
