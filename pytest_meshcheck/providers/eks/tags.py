"""The tags that make every resource of a run findable and reapable.

Every resource is tagged *at creation* (TagSpecifications, ``tags=``), never afterwards, so a crash
between "created" and "tagged" cannot leave an untraceable resource. Teardown and the reaper find
what to delete by these tags, not by what a process remembers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

RUN_ID = "meshcheck:run-id"
OWNER = "meshcheck:owner"
EXPIRES_AT = "meshcheck:expires-at"
CLUSTER = "meshcheck:cluster"
CREATED_BY = "meshcheck:created-by"

#: The tag the Kubernetes cloud integrations put on load balancers and security groups they create.
K8S_CLUSTER_PREFIX = "kubernetes.io/cluster/"
#: The tag the AWS Load Balancer Controller puts on what it creates.
LB_CONTROLLER_CLUSTER = "elbv2.k8s.aws/cluster"
ELB_ROLE = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE = "kubernetes.io/role/internal-elb"

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_STAMP)


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def run_tags(*, run_id: str, owner: str, cluster: str, created: datetime, ttl_s: float) -> dict[str, str]:
    """The tags every resource of one run carries."""
    return {
        RUN_ID: run_id,
        OWNER: owner[:256],
        CLUSTER: cluster,
        EXPIRES_AT: format_time(created + timedelta(seconds=ttl_s)),
        CREATED_BY: "pytest-meshcheck",
    }


def is_expired(tags: Mapping[str, str], now: datetime) -> bool:
    """True when the resource carries a run id and an expires-at that has passed.

    A malformed expires-at counts as not expired: the reaper must never delete on a guess.
    """
    if RUN_ID not in tags:
        return False
    expires = parse_time(tags.get(EXPIRES_AT, ""))
    return expires is not None and expires <= now


def as_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """EC2/IAM spelling: ``[{"Key": k, "Value": v}]``."""
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def from_list(items: object) -> dict[str, str]:
    if not isinstance(items, list):
        return {}
    return {str(item["Key"]): str(item.get("Value", "")) for item in items if "Key" in item}


def ec2_spec(resource_type: str, tags: Mapping[str, str], name: str) -> list[dict[str, object]]:
    """A TagSpecifications list for one EC2 create call, with a ``Name`` for the console."""
    return [{"ResourceType": resource_type, "Tags": as_list({**tags, "Name": name})}]
