"""Merging the generating processes' own accounts into one timeline and one list of failures.

Locust's master aggregates counts but not when each request started, so every generating process
records its own requests per second and its first failed requests (the report plugin), and the
harness sums them here. A timeline is only returned when every generating process delivered its
account: a partial one would silently under-count seconds, which is worse than none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_meshcheck.load.locust_output import FinalAccount
from pytest_meshcheck.load.results import FailureEvent, TimelineSecond


@dataclass(frozen=True, kw_only=True)
class MergedTimeline:
    timeline: tuple[TimelineSecond, ...] = ()
    failure_events: tuple[FailureEvent, ...] = ()
    failure_events_dropped: int = 0


def sum_seconds(parts: Iterable[Iterable[TimelineSecond]]) -> tuple[TimelineSecond, ...]:
    """One row per second, requests and failures summed over all parts, sorted by time."""
    totals: dict[int, list[int]] = {}
    for part in parts:
        for second in part:
            counts = totals.setdefault(second.at, [0, 0])
            counts[0] += second.requests
            counts[1] += second.failures
    return tuple(
        TimelineSecond(at=at, requests=requests, failures=failures)
        for at, (requests, failures) in sorted(totals.items())
    )


def merge_accounts(accounts: Sequence[FinalAccount], *, generators: int) -> MergedTimeline:
    """The run's timeline from the accounts of its ``generators`` generating processes.

    Master accounts are ignored (a master makes no requests). When fewer than ``generators``
    accounts carry a timeline the result is empty, and ``LoadResult.timeline`` says "unknown".
    """
    making = [a for a in accounts if a.role != "master" and a.timeline is not None]
    if len(making) < generators or generators == 0:
        return MergedTimeline()
    events = sorted(
        (event for account in making for event in account.failure_events or ()),
        key=lambda e: (e.at, e.name, e.method, e.error),
    )
    return MergedTimeline(
        timeline=sum_seconds(account.timeline or () for account in making),
        failure_events=tuple(events),
        failure_events_dropped=sum(account.failure_events_dropped for account in making),
    )
