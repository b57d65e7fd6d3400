"""The two IAM roles a cluster needs: one EKS assumes for the control plane, one the nodes assume.

Roles live under the ``/meshcheck/`` path, which lets the reaper list only ours (IAM is not covered
by the Resource Groups Tagging API), and carry the run tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import aws_errors, is_not_found, tolerate_not_found
from pytest_meshcheck.providers.eks.naming import IAM_PATH
from pytest_meshcheck.providers.eks.timing import Timing, wait

CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)


@dataclass(frozen=True, kw_only=True)
class Roles:
    cluster_arn: str
    node_arn: str


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def managed_policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def _ensure_role(
    iam: Any, *, name: str, service: str, policies: tuple[str, ...], tags: Mapping[str, str], partition: str
) -> str:
    from botocore.exceptions import ClientError

    with aws_errors(f"creating IAM role {name}"):
        try:
            arn = iam.create_role(
                RoleName=name,
                Path=IAM_PATH,
                AssumeRolePolicyDocument=_trust(service),
                Description="pytest-meshcheck run role; deleted by teardown or `meshcheck eks reap`",
                Tags=T.as_list(tags),
            )["Role"]["Arn"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
            existing = iam.get_role(RoleName=name)["Role"]
            if T.from_list(existing.get("Tags")).get(T.RUN_ID) != tags[T.RUN_ID]:
                raise
            arn = existing["Arn"]
        for policy in policies:
            iam.attach_role_policy(RoleName=name, PolicyArn=managed_policy_arn(partition, policy))
    return str(arn)


def create_roles(
    iam: Any, *, cluster_role: str, node_role: str, tags: Mapping[str, str], partition: str, timing: Timing
) -> Roles:
    """Create (or resume) both roles and wait until IAM reports them; EKS may still not see them
    for a few seconds, which ``cluster.create`` retries on."""
    cluster_arn = _ensure_role(
        iam,
        name=cluster_role,
        service="eks.amazonaws.com",
        policies=CLUSTER_POLICIES,
        tags=tags,
        partition=partition,
    )
    node_arn = _ensure_role(
        iam,
        name=node_role,
        service="ec2.amazonaws.com",
        policies=NODE_POLICIES,
        tags=tags,
        partition=partition,
    )
    for name in (cluster_role, node_role):
        wait(
            iam.get_waiter("role_exists"),
            timing,
            f"IAM role {name}",
            timeout=min(timing.timeout, 120),
            RoleName=name,
        )
    return Roles(cluster_arn=cluster_arn, node_arn=node_arn)


def delete_role(iam: Any, name: str) -> None:
    """Detach and delete everything that keeps a role alive, then the role. Gone is success."""
    from botocore.exceptions import ClientError

    with tolerate_not_found(f"deleting IAM role {name}"):
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for policy in page["AttachedPolicies"]:
                with tolerate_not_found(f"detaching {policy['PolicyArn']} from {name}"):
                    iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy_name in page["PolicyNames"]:
                with tolerate_not_found(f"deleting inline policy {policy_name} of {name}"):
                    iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
            for profile in page["InstanceProfiles"]:
                with tolerate_not_found(f"removing {name} from {profile['InstanceProfileName']}"):
                    iam.remove_role_from_instance_profile(
                        InstanceProfileName=profile["InstanceProfileName"], RoleName=name
                    )
        try:
            iam.delete_role(RoleName=name)
        except ClientError as exc:
            if not is_not_found(exc):
                raise


def find_roles(iam: Any) -> dict[str, dict[str, str]]:
    """Every role under the meshcheck path -> its tags (for teardown by run id and the reaper)."""
    found: dict[str, dict[str, str]] = {}
    with aws_errors("listing meshcheck IAM roles"):
        for page in iam.get_paginator("list_roles").paginate(PathPrefix=IAM_PATH):
            for role in page["Roles"]:
                name = role["RoleName"]
                try:
                    listed = iam.list_role_tags(RoleName=name)["Tags"]
                except Exception as exc:
                    if is_not_found(exc):
                        continue
                    raise
                found[name] = T.from_list(listed)
    return found
