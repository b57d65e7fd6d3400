"""What a load run is asked to do, as plain frozen data.

A ``LoadSpec`` is everything the runner needs and nothing it must discover, so the same spec can be
logged, attached to a report, compared between runs and (later) shipped to in-cluster Jobs. The
environment variables below are the whole contract between the runner and a locustfile: the
shipped locustfiles read them, and a user's locustfile may.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import Settings

#: Per-user pacing in requests per second; absent means closed loop.
ENV_USER_RATE = "MESHCHECK_LOCUST_USER_RATE"
#: Closed-loop think time between a user's requests, in seconds.
ENV_THINK_TIME = "MESHCHECK_LOCUST_THINK_TIME"
#: Host header to send (the gateway routes by it when reached by IP).
ENV_HOST_HEADER = "MESHCHECK_LOCUST_HOST_HEADER"
#: Which generator process sent a request (``standalone``, ``worker-1`` ...), sent as a header so
#: a target can attribute requests to the process that made them.
ENV_GENERATOR = "MESHCHECK_LOCUST_GENERATOR"
#: Directory where the report plugin writes each process's final account (``final-<generator>.json``).
ENV_REPORT_DIR = "MESHCHECK_LOCUST_REPORT"
#: Comma list of paths (or full URLs) for the generic ``http_get.py`` locustfile.
ENV_URLS = "MESHCHECK_LOCUST_URLS"

#: The request header carrying ``ENV_GENERATOR``'s value.
GENERATOR_HEADER = "X-Meshcheck-Generator"

CLOSED_LOOP = "closed-loop"
CONSTANT_RATE = "constant-rate"

_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")


def shipped_locustfile(name: str) -> Path:
    """A locustfile shipped with the plugin (``bookinfo.py``, ``http_get.py``)."""
    return data_file("locust", name)


def report_plugin_path() -> Path:
    """The locustfile that only records final failures; loaded beside the load locustfile."""
    return data_file("locust", "_meshcheck_report.py")


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """One bounded load run against one target.

    ``workers=0`` runs one standalone Locust process; ``workers=N`` runs a master and N worker
    processes on this machine. ``rps=None`` is closed-loop load (each user sends its next request
    when the previous one finished, after ``think_time_s``); a number is a total target rate paced
    per user by Locust's ``constant_throughput``, so it is a ceiling the generator tries to reach,
    not a guarantee: the result says whether it was reached.
    """

    target_url: str
    users: int
    spawn_rate: float
    duration_s: float
    locustfile: Path
    output_dir: Path
    workers: int = 0
    rps: float | None = None
    think_time_s: float = 0.0
    host_header: str = ""
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: Seconds a user may take to finish its request in flight when the run ends, so every request
    #: the target served is also counted by Locust.
    stop_timeout_s: float = 5.0
    #: Longest wait for the worker processes to connect to the master.
    workers_connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not _URL.match(self.target_url):
            problems.append(f"target_url {self.target_url!r} is not an http(s) URL")
        if self.users < 1:
            problems.append(f"users must be at least 1, not {self.users}")
        if self.workers < 0:
            problems.append(f"workers must be 0 (standalone) or more, not {self.workers}")
        for name in ("spawn_rate", "duration_s", "stop_timeout_s", "workers_connect_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number, not {value!r}")
        if self.rps is not None and not (math.isfinite(self.rps) and self.rps > 0):
            problems.append(f"rps must be a positive number or None, not {self.rps!r}")
        if not (math.isfinite(self.think_time_s) and self.think_time_s >= 0):
            problems.append(f"think_time_s must be 0 or more, not {self.think_time_s!r}")
        if problems:
            raise LoadError("invalid load spec: " + "; ".join(problems))
        object.__setattr__(self, "target_url", self.target_url.rstrip("/"))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    @property
    def mode(self) -> str:
        return CLOSED_LOOP if self.rps is None else CONSTANT_RATE

    @property
    def per_user_rate(self) -> float | None:
        """Requests per second each user is paced to; None in closed loop."""
        return None if self.rps is None else self.rps / self.users

    @property
    def run_time_s(self) -> int:
        """Locust's ``--run-time`` takes whole seconds; never round a run down to nothing."""
        return max(1, math.ceil(self.duration_s))

    def locust_env(self, generator: str) -> dict[str, str]:
        """The contract variables for one generator process (on top of ``env``)."""
        values = dict(self.env)
        values[ENV_GENERATOR] = generator
        values[ENV_THINK_TIME] = repr(self.think_time_s)
        rate = self.per_user_rate
        if rate is not None:
            values[ENV_USER_RATE] = repr(rate)
        else:
            values.pop(ENV_USER_RATE, None)
        if self.host_header:
            values[ENV_HOST_HEADER] = self.host_header
        return values


def spec_from_settings(
    settings: Settings,
    target_url: str,
    *,
    host_header: str = "",
    run_name: str = "load",
    output_dir: Path | None = None,
    duration_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadSpec:
    """The run the options ask for, against ``target_url`` (usually the ingress gateway).

    ``run_name`` separates the output of several runs in one session (``reports/locust/<name>``);
    ``duration_s`` lets a background run outlast the checks it accompanies.
    """
    locustfile = settings.locustfile or shipped_locustfile("bookinfo.py")
    return LoadSpec(
        target_url=target_url,
        users=settings.load_users,
        spawn_rate=settings.load_spawn_rate,
        duration_s=settings.load_duration if duration_s is None else duration_s,
        workers=settings.load_workers,
        rps=settings.load_rps,
        locustfile=locustfile.resolve(),
        output_dir=output_dir or settings.reports_dir / "locust" / run_name,
        host_header=host_header,
        env=dict(env or {}),
    )
