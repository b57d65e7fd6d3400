"""Names of a run's resources, derived from the cluster name and run id so they never collide."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

IAM_PATH = "/meshcheck/"
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC time to the second plus 6 random hex digits."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


def valid_cluster_name(name: str) -> bool:
    return bool(_CLUSTER_NAME.match(name))


@dataclass(frozen=True, kw_only=True)
class Names:
    cluster: str
    run_id: str

    @property
    def short(self) -> str:
        """A 6-hex suffix unique per run: IAM names are limited to 64 characters."""
        return self.run_id.rsplit("-", 1)[-1]

    @property
    def cluster_role(self) -> str:
        return f"meshcheck-{self.cluster[:30]}-{self.short}-cluster"

    @property
    def node_role(self) -> str:
        return f"meshcheck-{self.cluster[:30]}-{self.short}-node"

    @property
    def nodegroup(self) -> str:
        return f"{self.cluster[:50]}-nodes"

    def token(self, step: str) -> str:
        """An idempotency token: the same run retrying the same step reuses it."""
        return f"{self.run_id}-{step}"[:64]

    def resource(self, kind: str, index: int | str = "") -> str:
        suffix = f"-{index}" if index != "" else ""
        return f"{self.cluster}-{kind}{suffix}"
