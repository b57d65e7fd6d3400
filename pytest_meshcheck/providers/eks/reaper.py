"""``meshcheck eks reap``: delete what crashed runs left behind once their TTL has passed.

Every resource carries ``meshcheck:expires-at``; a run that ends normally deletes its resources
long before. Anything still there after that time belongs to a run that died without teardown
(a killed CI job, a lost laptop) and is deleted in the normal teardown order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.eks import discovery
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.teardown import Budget, destroy_run
from pytest_meshcheck.providers.eks.timing import Timing


@dataclass(frozen=True, kw_only=True)
class ReapedRun:
    run_id: str
    cluster: str
    owner: str
    expires_at: str
    resources: tuple[str, ...]
    outcome: str


def reap(
    region: str,
    dry_run: bool,
    *,
    aws: Aws | None = None,
    timing: Timing | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[ReapedRun]:
    """Find expired runs in ``region`` and delete them (or only list them with ``dry_run``).

    A run that fails to delete is reported with a ``FAILED`` outcome and the others still go.
    """
    aws = aws or Aws(region=region)
    timing = timing or Timing(timeout=1200.0)
    moment = now()
    reaped: list[ReapedRun] = []
    for run_id, entry in sorted(discovery.runs(aws).items()):
        tags = entry["tags"]
        if not T.is_expired(tags, moment):
            continue
        cluster = tags.get(T.CLUSTER, "")
        outcome = "would delete"
        if not dry_run:
            try:
                destroy_run(
                    aws,
                    cluster=cluster,
                    run_id=run_id,
                    timing=timing,
                    budget=Budget.from_timeout(timing.timeout),
                )
                outcome = "deleted"
            except ProviderError as exc:
                outcome = f"FAILED: {exc.message}"
        reaped.append(
            ReapedRun(
                run_id=run_id,
                cluster=cluster,
                owner=tags.get(T.OWNER, ""),
                expires_at=tags.get(T.EXPIRES_AT, ""),
                resources=tuple(entry["resources"]),
                outcome=outcome,
            )
        )
    return reaped
