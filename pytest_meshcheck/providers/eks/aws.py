"""One boto3 session per run, and the translation of botocore failures into ``ProviderError``.

boto3 already honours the standard AWS environment (profiles, ``AWS_REGION``, ``AWS_ENDPOINT_URL``
and its per-service variants), so the session is built with as few arguments as possible: passing
an explicit endpoint here would silently override what the user configured.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.errors import ProviderError

#: Error codes that mean "the thing is already gone": success for every delete.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NotFoundException",
        "InvalidVpcID.NotFound",
        "InvalidSubnetID.NotFound",
        "InvalidGroup.NotFound",
        "InvalidInternetGatewayID.NotFound",
        "InvalidRouteTableID.NotFound",
        "InvalidAssociationID.NotFound",
        "InvalidNetworkInterfaceID.NotFound",
        "InvalidAllocationID.NotFound",
        "InvalidAddress.NotFound",
        "NatGatewayNotFound",
        "InvalidNatGatewayID.NotFound",
        "Gateway.NotAttached",
        "LoadBalancerNotFound",
        "LoadBalancerNotFoundException",
        "ValidationError",  # CloudFormation and ELB say "does not exist" this way
    }
)


@dataclass
class Aws:
    """Clients for one region, created on first use and shared by every step of a run."""

    region: str
    profile: str = ""
    _session: Any = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            with aws_errors("loading the AWS configuration"):
                self._session = boto3.session.Session(
                    profile_name=self.profile or None, region_name=self.region or None
                )
            if not self.region:
                # botocore reads AWS_DEFAULT_REGION and profiles; the SDKs' AWS_REGION too
                self.region = self._session.region_name or os.environ.get("AWS_REGION", "")
            if not self.region:
                raise ProviderError(
                    "no AWS region: pass --meshcheck-eks-region (or --region), or set AWS_REGION "
                    "or AWS_DEFAULT_REGION, or a region in the AWS profile"
                )
        return self._session

    def ensure_region(self) -> str:
        """The region, resolved from the AWS environment when none was given."""
        _ = self.session
        return self.region

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 8})
            with aws_errors(f"creating the {service} client"):
                self._clients[service] = self.session.client(service, region_name=self.region, config=config)
        return self._clients[service]

    def credentials(self) -> Any:
        """Frozen credentials for signing (the session refreshes them when they are temporary)."""
        with aws_errors("loading AWS credentials"):
            creds = self.session.get_credentials()
        if creds is None:
            raise ProviderError("no AWS credentials found (set a profile or AWS_ACCESS_KEY_ID)")
        return creds.get_frozen_credentials()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, or "" for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        if code == "ValidationError":
            return "does not exist" in str(exc)
        return True
    return False


def is_botocore_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Re-raise botocore failures as ``ProviderError`` naming what was being done."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise ProviderError(f"AWS failed while {doing}: {exc}") from exc


def tolerate_not_found(doing: str) -> Any:
    """Like ``aws_errors`` but a NotFound answer is success (for deletes)."""
    return _TolerateNotFound(doing)


class _TolerateNotFound:
    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not is_botocore_error(exc):
            return False
        if is_not_found(exc):
            return True
        raise ProviderError(f"AWS failed while {self.doing}: {exc}") from exc


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
