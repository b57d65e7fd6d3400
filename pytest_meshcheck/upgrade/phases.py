"""The upgrade's timeline: when each step ran, and which requests failed during it.

Every step of the upgrade is a phase with wall-clock start and end times. The load generator
records requests and failures per second and each failure's time (see ``LoadResult.timeline`` and
``failure_events``), so the failures of the window can be blamed on the step that was running.
Requests in the gaps between steps (waiting, verifying) belong to the phase ``between steps``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

BETWEEN = "between steps"


@dataclass(kw_only=True)
class Phase:
    name: str
    started_at: float
    ended_at: float | None = None
    outcome: str = "running"
    detail: str = ""

    @property
    def seconds(self) -> float:
        return (self.ended_at or time.time()) - self.started_at

    def contains(self, at: float) -> bool:
        return self.started_at <= at < (self.ended_at if self.ended_at is not None else float("inf"))


@dataclass
class PhaseLog:
    """Records phases as they run; ``clock`` is wall-clock time to line up with the load's times."""

    clock: Callable[[], float] = time.time
    phases: list[Phase] = field(default_factory=list)
    on_start: Callable[[str], None] | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        current = Phase(name=name, started_at=self.clock())
        self.phases.append(current)
        if self.on_start is not None:
            self.on_start(name)
        try:
            yield current
        except BaseException as exc:
            current.outcome = "failed"
            current.detail = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        else:
            current.outcome = "done"
        finally:
            current.ended_at = self.clock()

    def phase_at(self, at: float) -> str:
        for phase in self.phases:
            if phase.contains(at):
                return phase.name
        return BETWEEN

    def durations(self) -> dict[str, float]:
        return {p.name: round(p.seconds, 3) for p in self.phases}

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {
                "name": p.name,
                "started_at": round(p.started_at, 3),
                "ended_at": round(p.ended_at, 3) if p.ended_at is not None else None,
                "seconds": round(p.seconds, 3),
                "outcome": p.outcome,
                **({"detail": p.detail} if p.detail else {}),
            }
            for p in self.phases
        ]


@dataclass(frozen=True, kw_only=True)
class PhaseTraffic:
    phase: str
    requests: int
    failures: int
    errors: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def traffic_by_phase(
    log: PhaseLog, timeline: Sequence[Any], failure_events: Sequence[Any]
) -> list[PhaseTraffic]:
    """Requests and failures per phase. Requests come from the per-second timeline (a second that
    straddles two phases is given to the phase running at its middle); failures from the failure
    events' own times, with their error texts counted."""
    requests: dict[str, int] = {}
    for second in timeline:
        name = log.phase_at(float(second.at) + 0.5)
        requests[name] = requests.get(name, 0) + int(second.requests)
    failures: dict[str, int] = {}
    errors: dict[str, dict[str, int]] = {}
    for event in failure_events:
        name = log.phase_at(float(event.at))
        failures[name] = failures.get(name, 0) + 1
        bucket = errors.setdefault(name, {})
        text = str(event.error)[:200]
        bucket[text] = bucket.get(text, 0) + 1
    order = [p.name for p in log.phases] + [BETWEEN]
    names = [n for n in dict.fromkeys(order) if n in requests or n in failures]
    return [
        PhaseTraffic(
            phase=name,
            requests=max(requests.get(name, 0), failures.get(name, 0)),
            failures=failures.get(name, 0),
            errors=errors.get(name, {}),
        )
        for name in names
    ]


def failures_by_second(failure_events: Sequence[Any], log: PhaseLog) -> list[dict[str, Any]]:
    """Failed requests per wall-clock second with the phase running then (for the report)."""
    seconds: dict[int, int] = {}
    for event in failure_events:
        key = int(event.at)
        seconds[key] = seconds.get(key, 0) + 1
    return [
        {"at": at, "failures": count, "phase": log.phase_at(at + 0.5)}
        for at, count in sorted(seconds.items())
    ]
