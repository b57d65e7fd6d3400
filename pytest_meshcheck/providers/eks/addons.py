"""EKS managed add-ons (vpc-cni, kube-proxy, coredns) and access entries.

Only what the run asked for is created; teardown removes what the run recorded, and the cluster's
own deletion removes anything else attached to it. Without add-ons requested, EKS installs these
three as self-managed components anyway, which is enough for the harness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_meshcheck.providers.eks.aws import aws_errors, tolerate_not_found
from pytest_meshcheck.providers.eks.timing import Timing, wait

KNOWN_ADDONS = ("vpc-cni", "kube-proxy", "coredns")
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def create(
    eks: Any, cluster: str, names: Sequence[str], *, tags: Mapping[str, str], timing: Timing, timeout: float
) -> None:
    for name in names:
        with aws_errors(f"creating add-on {name}"):
            eks.create_addon(
                clusterName=cluster, addonName=name, resolveConflicts="OVERWRITE", tags=dict(tags)
            )
    for name in names:
        with aws_errors(f"waiting for add-on {name}"):
            wait(
                eks.get_waiter("addon_active"),
                timing,
                f"add-on {name} to become ACTIVE",
                timeout,
                clusterName=cluster,
                addonName=name,
            )


def delete(eks: Any, cluster: str, names: Sequence[str], timing: Timing, timeout: float) -> None:
    for name in names:
        with tolerate_not_found(f"deleting add-on {name}"):
            eks.delete_addon(clusterName=cluster, addonName=name)
    for name in names:
        wait(
            eks.get_waiter("addon_deleted"),
            timing,
            f"add-on {name} deletion",
            timeout,
            clusterName=cluster,
            addonName=name,
        )


def grant_admin(eks: Any, cluster: str, principals: Sequence[str], tags: Mapping[str, str]) -> None:
    """Give extra principals (a CI role, a person) cluster-admin through access entries."""
    for principal in principals:
        with aws_errors(f"granting {principal} access to {cluster}"):
            eks.create_access_entry(clusterName=cluster, principalArn=principal, tags=dict(tags))
            eks.associate_access_policy(
                clusterName=cluster,
                principalArn=principal,
                policyArn=CLUSTER_ADMIN_POLICY,
                accessScope={"type": "cluster"},
            )


def revoke(eks: Any, cluster: str, principals: Sequence[str]) -> None:
    for principal in principals:
        with tolerate_not_found(f"deleting the access entry of {principal}"):
            eks.delete_access_entry(clusterName=cluster, principalArn=principal)
