"""From Locust's parsed output to a ``LoadResult``: the one place a result is built.

Both kinds of run end with the same pieces: Locust's final statistics (a ``StatsTable``), the
final account our report plugin wrote for each process (``FinalAccount``), the files kept as
artifacts, and per process its role, exit code and CPU use. ``LoadRun`` reads them from files on
this machine and ``InClusterLoadRun`` from the pods' logs; what a result says and derives from
them (mode, rates, failures, history, timeline, failure events, how busy each generator was,
whether the aggregate is complete) is decided here only, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_meshcheck.errors import HarnessError
from pytest_meshcheck.load.cpu import CpuSample, busy_share
from pytest_meshcheck.load.locust_output import (
    FinalAccount,
    StatsTable,
    exceptions_from_csv,
    failures_from_csv,
    history_from_csv,
)
from pytest_meshcheck.load.results import (
    FailureGroup,
    GeneratorProcess,
    HistoryPoint,
    LoadArtifacts,
    LoadResult,
    LocustException,
)
from pytest_meshcheck.load.spec import LoadSpec
from pytest_meshcheck.load.timeline import merge_accounts

#: Roles of the process whose account carries the run's failures, exceptions and stats.
LEAD_ROLES = ("standalone", "master")


@dataclass(frozen=True, kw_only=True)
class ProcessOutcome:
    """One Locust process as its runner saw it end.

    ``pid`` is 0 where there is none to tell (a pod). ``cpu_s`` is its CPU time over its whole
    life where the runner measured it; ``cpu_samples`` are its cumulative CPU times while it ran.
    Where the runner has neither, the process's own account may carry them (a pod's report).
    """

    role: str
    generator: str
    exit_code: int | None
    pid: int = 0
    cpu_s: float | None = None
    cpu_samples: tuple[CpuSample, ...] = ()


def lead_generator(processes: Sequence[ProcessOutcome]) -> str:
    """The generator name of the standalone process or the master."""
    leads = [p.generator for p in processes if p.role in LEAD_ROLES]
    if len(leads) != 1:
        raise HarnessError(f"a load run has one standalone process or master, not {leads!r}")
    return leads[0]


def build_result(
    spec: LoadSpec,
    *,
    target_url: str,
    table: StatsTable,
    accounts: Mapping[str, FinalAccount],
    processes: Sequence[ProcessOutcome],
    artifacts: LoadArtifacts,
    stopped_early: bool,
    origin: str,
) -> LoadResult:
    """The result of one run.

    ``accounts`` are the final accounts by generator name (a process whose account is missing has
    none); ``processes`` are listed in the order the result lists its generators. Failures and
    exceptions come from the lead's account, and from Locust's CSV files (``artifacts``) where
    that account lacks them; the stats history comes from Locust's history CSV.
    """
    lead = accounts.get(lead_generator(processes))
    merged = merge_accounts(list(accounts.values()), generators=max(1, spec.workers))
    return LoadResult(
        mode=spec.mode,
        target_url=target_url,
        users=spec.users,
        workers=spec.workers,
        requested_duration_s=spec.duration_s,
        measured_s=table.measured_s,
        total=table.total,
        endpoints=table.endpoints,
        failures_by_type=_failures(lead, artifacts),
        exceptions=_exceptions(lead, artifacts),
        history=_history(artifacts),
        generators=tuple(_generator(p, accounts.get(p.generator), table) for p in processes),
        target_rps=spec.rps,
        artifacts=artifacts,
        stopped_early=stopped_early,
        first_request_at=table.first_at,
        last_request_at=table.last_at,
        timeline=merged.timeline,
        failure_events=merged.failure_events,
        failure_events_dropped=merged.failure_events_dropped,
        origin=origin,
    )


def _failures(lead: FinalAccount | None, artifacts: LoadArtifacts) -> tuple[FailureGroup, ...]:
    if lead is not None and lead.errors is not None:
        return lead.errors
    if artifacts.failures_csv is not None:
        return failures_from_csv(artifacts.failures_csv)
    return ()


def _exceptions(lead: FinalAccount | None, artifacts: LoadArtifacts) -> tuple[LocustException, ...]:
    if lead is not None and lead.exceptions is not None:
        return lead.exceptions
    if artifacts.exceptions_csv is not None:
        return exceptions_from_csv(artifacts.exceptions_csv)
    return ()


def _history(artifacts: LoadArtifacts) -> tuple[HistoryPoint, ...]:
    return () if artifacts.history_csv is None else history_from_csv(artifacts.history_csv)


def _generator(process: ProcessOutcome, account: FinalAccount | None, table: StatsTable) -> GeneratorProcess:
    samples, cpu_s = process.cpu_samples, process.cpu_s
    start, end = table.first_at, table.last_at
    if not samples and cpu_s is None and account is not None and account.cpu:
        # Measured by the process itself (a pod): its CPU time until it printed its report.
        samples, cpu_s = account.cpu, account.cpu[-1].cpu_s
        if end is not None and samples[-1].at < end:
            # It reported after its own users had stopped: another worker's last request may
            # come later, and this process spent nothing on load after its report.
            samples = (*samples, CpuSample(at=end, cpu_s=cpu_s))
    return GeneratorProcess(
        role=process.role,
        generator=process.generator,
        pid=process.pid,
        exit_code=process.exit_code,
        cpu_s=cpu_s,
        busy=None if start is None or end is None else busy_share(samples, start, end),
        requests_made=None if account is None else account.requests_made,
        failures_made=None if account is None else account.failures_made,
    )
