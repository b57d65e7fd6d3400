"""How busy a load generator process was, from samples of its cumulative CPU time.

A generator that uses a whole core measures itself, not the target: the result must say so. CPU
time is sampled from ``/proc`` while the process runs (and taken exactly from ``wait4`` when it is
reaped); the share of a core is the CPU time spent inside the load window divided by its length,
so Locust's start-up (imports, connecting workers) does not count.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: Shorter windows give numbers dominated by sampling jitter; report none instead.
MIN_WINDOW_S = 0.5


@dataclass(frozen=True, kw_only=True)
class CpuSample:
    """Cumulative CPU seconds (user + system, all threads) of a process at a wall-clock instant."""

    at: float
    cpu_s: float


def read_proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` from ``/proc``; None where there is no procfs."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    # Counting from the state (field 3 in man 5 proc), utime is field 14 and stime field 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def _cpu_at(samples: Sequence[CpuSample], at: float) -> float | None:
    """CPU time at ``at``, interpolated between the samples around it."""
    if not samples or at < samples[0].at or at > samples[-1].at:
        return None
    for before, after in itertools.pairwise(samples):
        if before.at <= at <= after.at:
            span = after.at - before.at
            if span <= 0:
                return before.cpu_s
            return before.cpu_s + (after.cpu_s - before.cpu_s) * (at - before.at) / span
    return samples[-1].cpu_s


def busy_share(samples: Sequence[CpuSample], start: float, end: float) -> float | None:
    """Share of one core used between ``start`` and ``end``; None if the samples do not cover it."""
    if end - start < MIN_WINDOW_S:
        return None
    ordered = sorted(samples, key=lambda s: s.at)
    first, last = _cpu_at(ordered, start), _cpu_at(ordered, end)
    if first is None or last is None:
        return None
    return max(0.0, (last - first) / (end - start))
