"""The typed result of one load run, as the suites, reports and benchmarks consume it.

Frozen data only: how it is read from Locust's files lives in ``locust_output.py`` and how it is
measured in ``runner.py``. Latencies are milliseconds, rates are per second, timestamps are Unix
seconds. The result states its own limits: closed-loop or constant-rate, whether a rate target was
reached, whether the generator was the bottleneck, whether the aggregate is provably complete.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: A target rate counts as reached at this share of it.
TARGET_REACHED_SHARE = 0.9
#: A generator process busier than this share of one core is the bottleneck, not the target.
SATURATED_SHARE = 0.9
#: Failure events each generating process keeps (the report plugin's ``MAX_FAILURE_EVENTS``).
MAX_FAILURE_EVENTS_PER_PROCESS = 2000


@dataclass(frozen=True, kw_only=True)
class Latency:
    """Locust's latency summary of a set of requests (its histogram rounds above 100 ms)."""

    avg_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, kw_only=True)
class EndpointStats:
    """One row of Locust's statistics: a request name and method, or the ``Aggregated`` row."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    latency: Latency
    avg_content_bytes: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, kw_only=True)
class FailureGroup:
    """Failed requests of one kind: same method, name and error text."""

    method: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True, kw_only=True)
class LocustException:
    """An exception raised inside the locustfile's own code (not a failed request)."""

    count: int
    message: str
    traceback: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HistoryPoint:
    """One sample of Locust's stats history (about once a second), for plots."""

    at: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    total_requests: int
    total_failures: int


@dataclass(frozen=True, kw_only=True)
class TimelineSecond:
    """Requests that started in one wall-clock second, across all generating processes."""

    #: Unix time, whole second (floor of the request's start time).
    at: int
    requests: int
    failures: int


@dataclass(frozen=True, kw_only=True)
class FailureEvent:
    """One failed request, for placing failures beside other events (e.g. upgrade phases)."""

    #: Unix time the request started.
    at: float
    #: Locust's request name.
    name: str
    method: str
    #: Short text of the failure (exception/status), as Locust groups it.
    error: str


@dataclass(frozen=True, kw_only=True)
class GeneratorProcess:
    """One Locust process and what it cost.

    ``busy`` is the share of one core it used while load ran (None when it could not be sampled);
    ``requests_made`` is its own count of the requests it made (None for the master, which makes
    none, or when its final account is missing).
    """

    role: str
    generator: str
    pid: int
    exit_code: int | None
    cpu_s: float | None
    busy: float | None
    requests_made: int | None
    failures_made: int | None

    @property
    def saturated(self) -> bool:
        return self.busy is not None and self.busy >= SATURATED_SHARE


@dataclass(frozen=True, kw_only=True)
class LoadArtifacts:
    """Files worth attaching to a report; a path is None when the run did not produce it."""

    stats_csv: Path | None
    history_csv: Path | None
    failures_csv: Path | None
    exceptions_csv: Path | None
    json: Path | None
    html: Path | None
    logs: tuple[Path, ...]


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """What one run measured. ``total`` is Locust's aggregated row over all endpoints."""

    mode: str
    target_url: str
    users: int
    workers: int
    requested_duration_s: float
    #: From the first request's start of stats to the last request, as Locust counts it.
    measured_s: float
    total: EndpointStats
    endpoints: tuple[EndpointStats, ...]
    failures_by_type: tuple[FailureGroup, ...]
    exceptions: tuple[LocustException, ...]
    history: tuple[HistoryPoint, ...]
    generators: tuple[GeneratorProcess, ...]
    target_rps: float | None
    artifacts: LoadArtifacts
    #: True when the run was stopped before its duration (for instance with a failing test body).
    stopped_early: bool = False
    #: Unix time of the first and last request, to place the run beside other events (upgrade
    #: phases, Kiali scrapes); None when the output does not record them (CSV-only output).
    first_request_at: float | None = None
    last_request_at: float | None = None
    #: Requests per second of their start, summed over the generating processes, sorted by time;
    #: empty when the processes' own accounts are missing. Sums to ``requests`` when complete.
    timeline: tuple[TimelineSecond, ...] = ()
    #: Failed requests with their start times, sorted by time; each generating process keeps its
    #: first ``MAX_FAILURE_EVENTS_PER_PROCESS`` and counts the rest in ``failure_events_dropped``.
    failure_events: tuple[FailureEvent, ...] = ()
    failure_events_dropped: int = 0
    #: Where the load came from: ``local`` (processes on the machine running pytest) or
    #: ``in-cluster (...)`` (Jobs next to the gateway), so a report says what it measured.
    origin: str = "local"

    @property
    def requests(self) -> int:
        return self.total.requests

    @property
    def failures(self) -> int:
        return self.total.failures

    @property
    def error_rate(self) -> float:
        """Failed share of requests; 1.0 when nothing could even be sent and all that was tried failed."""
        return self.total.error_rate

    @property
    def rps(self) -> float:
        return self.total.rps

    @property
    def latency(self) -> Latency:
        return self.total.latency

    @property
    def achieved_rps(self) -> float:
        return self.total.rps

    @property
    def target_missed(self) -> bool:
        """A constant-rate run that stayed below ``TARGET_REACHED_SHARE`` of its target."""
        return self.target_rps is not None and self.achieved_rps < TARGET_REACHED_SHARE * self.target_rps

    @property
    def generator_saturated(self) -> bool:
        return any(process.saturated for process in self.generators)

    @property
    def requests_made_by_generators(self) -> int | None:
        """Sum of the requests each generating process counted itself; None if any account is missing."""
        counts = [p.requests_made for p in self.generators if p.role != "master"]
        if not counts or any(count is None for count in counts):
            return None
        return sum(count for count in counts if count is not None)

    @property
    def aggregation_complete(self) -> bool | None:
        """Whether Locust's aggregate equals the sum of what its generating processes made."""
        made = self.requests_made_by_generators
        return None if made is None else made == self.requests

    @property
    def timeline_requests(self) -> int:
        """Requests counted by the timeline; equals ``requests`` when every account arrived."""
        return sum(second.requests for second in self.timeline)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (paths as strings) for the summary file and attachments.

        The timeline and the failure events can hold thousands of entries, so they are rows rather
        than objects: ``timeline`` is ``[at, requests, failures]`` per second and
        ``failure_events`` is ``[at, method, name, error]`` per failed request (``at`` rounded to
        the millisecond), with the column names under ``timeline_columns`` and
        ``failure_event_columns``.
        """
        data = asdict(self)
        data["timeline"] = [[s.at, s.requests, s.failures] for s in self.timeline]
        data["timeline_columns"] = ["at", "requests", "failures"]
        data["failure_events"] = [[round(e.at, 3), e.method, e.name, e.error] for e in self.failure_events]
        data["failure_event_columns"] = ["at", "method", "name", "error"]
        data["artifacts"] = {
            key: (
                None if value is None else [str(v) for v in value] if isinstance(value, tuple) else str(value)
            )
            for key, value in data["artifacts"].items()
        }
        data.update(
            requests=self.requests,
            failures=self.failures,
            error_rate=self.error_rate,
            achieved_rps=self.achieved_rps,
            target_missed=self.target_missed,
            generator_saturated=self.generator_saturated,
            aggregation_complete=self.aggregation_complete,
        )
        return data
