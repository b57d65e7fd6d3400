"""Finding a run's resources by tag, across the services that do and do not support the
Resource Groups Tagging API (IAM does not; Elastic IPs and EKS are uneven across endpoints)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws, aws_errors
from pytest_meshcheck.providers.eks.cluster import describe as describe_cluster
from pytest_meshcheck.providers.eks.cluster import list_clusters
from pytest_meshcheck.providers.eks.iam import find_roles


def tagged_sets(aws: Aws) -> Iterator[tuple[str, dict[str, str]]]:
    """(resource id, tags) for everything carrying a meshcheck run id in this region."""
    ec2 = aws.client("ec2")
    has_run = [{"Name": "tag-key", "Values": [T.RUN_ID]}]
    with aws_errors("searching tagged resources"):
        for page in (
            aws.client("resourcegroupstaggingapi")
            .get_paginator("get_resources")
            .paginate(TagFilters=[{"Key": T.RUN_ID}])
        ):
            for item in page["ResourceTagMappingList"]:
                yield item["ResourceARN"], T.from_list(item.get("Tags"))
        for vpc in ec2.describe_vpcs(Filters=has_run)["Vpcs"]:
            yield vpc["VpcId"], T.from_list(vpc.get("Tags"))
        for subnet in ec2.describe_subnets(Filters=has_run)["Subnets"]:
            yield subnet["SubnetId"], T.from_list(subnet.get("Tags"))
        for address in ec2.describe_addresses(Filters=has_run)["Addresses"]:
            yield address["AllocationId"], T.from_list(address.get("Tags"))
        for nat in ec2.describe_nat_gateways(Filter=has_run)["NatGateways"]:
            if nat["State"] != "deleted":
                yield nat["NatGatewayId"], T.from_list(nat.get("Tags"))
    for name, tags in find_roles(aws.client("iam")).items():
        yield f"iam-role/{name}", tags
    eks = aws.client("eks")
    for name in list_clusters(eks):
        info = describe_cluster(eks, name)
        if info is not None and T.RUN_ID in info.tags:
            yield f"eks-cluster/{name}", dict(info.tags)


def runs(aws: Aws) -> dict[str, dict[str, Any]]:
    """run id -> {"tags": the run's tags, "resources": ids seen}."""
    found: dict[str, dict[str, Any]] = {}
    for resource, tags in tagged_sets(aws):
        if T.RUN_ID not in tags:
            continue  # a filter the endpoint ignored
        entry = found.setdefault(tags[T.RUN_ID], {"tags": tags, "resources": []})
        entry["resources"].append(resource)
    return found


def runs_of_cluster(aws: Aws, cluster: str) -> list[str]:
    """Run ids whose resources are tagged for ``cluster`` (normally one; more after crashes)."""
    return sorted(run_id for run_id, entry in runs(aws).items() if entry["tags"].get(T.CLUSTER) == cluster)
