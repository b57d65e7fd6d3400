"""The EKS control plane: create (retrying what AWS asks to be retried), wait, describe, delete."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import aws_errors, error_code, is_not_found
from pytest_meshcheck.providers.eks.timing import Timing, wait

#: How long EKS may keep saying "cannot assume role" while a new IAM role propagates.
IAM_PROPAGATION_S = 120.0


@dataclass(frozen=True, kw_only=True)
class ClusterInfo:
    name: str
    arn: str
    endpoint: str
    certificate_authority: str
    version: str
    status: str
    tags: Mapping[str, str]
    security_group: str = ""


class UnsupportedZones(ProviderError):
    """EKS refused a zone; ``valid_zones`` are the ones it offered instead."""

    def __init__(self, message: str, valid_zones: Sequence[str]) -> None:
        super().__init__(message)
        self.valid_zones = tuple(valid_zones)


def _iam_not_ready(exc: BaseException) -> bool:
    text = str(exc).lower()
    return error_code(exc) == "InvalidParameterException" and (
        "role" in text and ("assume" in text or "does not exist" in text or "not authorized" in text)
    )


def create(
    eks: Any,
    *,
    name: str,
    version: str,
    role_arn: str,
    subnets: Sequence[str],
    tags: Mapping[str, str],
    token: str,
    timing: Timing,
) -> None:
    """Ask for the cluster; retry while IAM propagates; raise ``UnsupportedZones`` for the caller
    to re-plan subnets. A cluster of the same name and run (an earlier attempt that got through)
    counts as created."""
    from botocore.exceptions import ClientError

    request = {
        "name": name,
        "version": version,
        "roleArn": role_arn,
        "resourcesVpcConfig": {
            "subnetIds": list(subnets),
            "endpointPublicAccess": True,
            "endpointPrivateAccess": True,
        },
        "accessConfig": {
            "authenticationMode": "API_AND_CONFIG_MAP",
            "bootstrapClusterCreatorAdminPermissions": True,
        },
        "tags": dict(tags),
        "clientRequestToken": token,
    }

    def attempt() -> tuple[bool, str]:
        try:
            eks.create_cluster(**request)
        except ClientError as exc:
            code = error_code(exc)
            if code == "UnsupportedAvailabilityZoneException":
                zones = exc.response.get("validZones") or []
                raise UnsupportedZones(f"EKS cannot use one of the subnets' zones: {exc}", zones) from exc
            if code == "ResourceInUseException":
                existing = describe(eks, name)
                if existing is not None and existing.tags.get(T.RUN_ID) == tags.get(T.RUN_ID):
                    return True, ""
                raise ProviderError(
                    f"an EKS cluster named {name!r} already exists and belongs to another run; "
                    "choose another --name or reuse it with --meshcheck-eks-cluster"
                ) from exc
            if _iam_not_ready(exc):
                return False, str(exc)
            raise ProviderError(f"AWS failed while creating EKS cluster {name}: {exc}") from exc
        return True, ""

    timing.poll(
        f"IAM role {role_arn} to become usable by EKS",
        attempt,
        timeout=min(timing.timeout, IAM_PROPAGATION_S),
        describe=str,
    )


def wait_active(eks: Any, name: str, timing: Timing, timeout: float) -> ClusterInfo:
    wait(eks.get_waiter("cluster_active"), timing, f"EKS cluster {name} to become ACTIVE", timeout, name=name)
    info = describe(eks, name)
    if info is None:
        raise ProviderError(f"EKS cluster {name} vanished right after becoming ACTIVE")
    return info


def describe(eks: Any, name: str) -> ClusterInfo | None:
    from botocore.exceptions import ClientError

    try:
        with_info = eks.describe_cluster(name=name)["cluster"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise ProviderError(f"AWS failed while describing EKS cluster {name}: {exc}") from exc
    vpc = with_info.get("resourcesVpcConfig", {})
    return ClusterInfo(
        name=with_info["name"],
        arn=with_info.get("arn", ""),
        endpoint=with_info.get("endpoint", ""),
        certificate_authority=with_info.get("certificateAuthority", {}).get("data", ""),
        version=with_info.get("version", ""),
        status=with_info.get("status", ""),
        tags=dict(with_info.get("tags", {})),
        security_group=vpc.get("clusterSecurityGroupId", ""),
    )


def delete(eks: Any, name: str, timing: Timing, timeout: float) -> bool:
    """Delete and wait until gone. Returns False when there was nothing to delete."""
    from botocore.exceptions import ClientError

    try:
        eks.delete_cluster(name=name)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        if error_code(exc) != "ResourceInUseException" or "DELETING" not in str(exc).upper():
            raise ProviderError(f"AWS failed while deleting EKS cluster {name}: {exc}") from exc
    wait(eks.get_waiter("cluster_deleted"), timing, f"EKS cluster {name} deletion", timeout, name=name)
    return True


def list_clusters(eks: Any) -> list[str]:
    names: list[str] = []
    with aws_errors("listing EKS clusters"):
        for page in eks.get_paginator("list_clusters").paginate():
            names += page["clusters"]
    return names


def find_by_tag(
    eks: Any, key: str, value: str | None = None, accept: Callable[[ClusterInfo], bool] | None = None
) -> list[ClusterInfo]:
    found = []
    for name in list_clusters(eks):
        info = describe(eks, name)
        if info is None or key not in info.tags:
            continue
        if value is not None and info.tags[key] != value:
            continue
        if accept is None or accept(info):
            found.append(info)
    return found
