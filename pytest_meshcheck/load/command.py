"""The Locust command lines and environments for one run, and where their output goes.

Pure functions of a ``LoadSpec``: what would be started can be shown, logged and tested without
starting anything. Locust is always started with the interpreter that runs pytest, so the Locust
used is the one installed beside the plugin, as ``<python> -m locust`` would start it (see
``LOCUST_MAIN`` for why not literally that).
"""

from __future__ import annotations

import math
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_meshcheck.load.spec import ENV_REPORT_DIR, LoadSpec, report_plugin_path

#: ``python -m locust``, with SIGINT handled again first. A process started with SIGINT ignored (a
#: background job of a non-interactive shell script, ``nohup``: common in CI) passes that on to its
#: children, and Python then leaves it ignored, so Locust would never see the SIGINT that stops it
#: gracefully; it would be killed after the grace period without its HTML report or our final
#: account (the per-second timeline, the failure events). Nothing else is imported before Locust,
#: which must monkey-patch the standard library before anything uses it.
LOCUST_MAIN = (
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('locust', run_name='__main__', alter_sys=True)",
)

#: Prefix of Locust's own output files inside the run's output directory.
OUTPUT_STEM = "locust"


@dataclass(frozen=True, kw_only=True)
class OutputFiles:
    """Every file one run writes, so stale files of an earlier run can be removed first."""

    directory: Path

    @property
    def csv_prefix(self) -> Path:
        return self.directory / OUTPUT_STEM

    @property
    def stats_csv(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}_stats.csv"

    @property
    def history_csv(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}_stats_history.csv"

    @property
    def failures_csv(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}_failures.csv"

    @property
    def exceptions_csv(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}_exceptions.csv"

    @property
    def json_stem(self) -> Path:
        """What ``--json-file`` is given: Locust appends ``.json`` itself."""
        return self.directory / OUTPUT_STEM

    @property
    def json(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}.json"

    @property
    def html(self) -> Path:
        return self.directory / f"{OUTPUT_STEM}.html"

    def log(self, generator: str) -> Path:
        return self.directory / f"{generator}.log"

    def final_report(self, generator: str) -> Path:
        return self.directory / f"final-{generator}.json"

    def clear(self) -> None:
        """Remove what an earlier run left here; reading it back would fake this run's result."""
        fixed = (
            self.stats_csv,
            self.history_csv,
            self.failures_csv,
            self.exceptions_csv,
            self.json,
            self.html,
        )
        for path in (*fixed, *self.directory.glob("final-*.json"), *self.directory.glob("*.log")):
            path.unlink(missing_ok=True)


@dataclass(frozen=True, kw_only=True)
class ProcessPlan:
    """One process to start: its role, generator name, argv and full environment."""

    role: str
    generator: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for the master's bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_environment(inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The inherited environment without ``LOCUST_*`` settings that would silently change a run."""
    source = os.environ if inherited is None else inherited
    env = {key: value for key, value in source.items() if not key.startswith("LOCUST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _locustfiles(spec: LoadSpec) -> str:
    return f"{spec.locustfile},{report_plugin_path()}"


def plan_processes(
    spec: LoadSpec,
    files: OutputFiles,
    *,
    python: str | None = None,
    master_port: int | None = None,
    inherited_env: Mapping[str, str] | None = None,
) -> tuple[ProcessPlan, ...]:
    """The processes of a run: one standalone, or the master first and then its workers."""
    interpreter = python or sys.executable
    locust = (interpreter, *LOCUST_MAIN)
    common_env = base_environment(inherited_env)
    common_env[ENV_REPORT_DIR] = str(files.directory)
    quiet = ("--only-summary", "--loglevel", "INFO", "--exit-code-on-error", "0")
    run = (
        "--headless",
        "-f", _locustfiles(spec),
        "-H", spec.target_url,
        "-u", str(spec.users),
        "-r", repr(spec.spawn_rate),
        "-t", f"{spec.run_time_s}s",
        "--stop-timeout", f"{math.ceil(spec.stop_timeout_s)}s",
        "--csv", str(files.csv_prefix),
        "--json-file", str(files.json_stem),
        "--html", str(files.html),
        *quiet,
    )  # fmt: skip
    if spec.workers == 0:
        env = {**common_env, **spec.locust_env("standalone")}
        return (ProcessPlan(role="standalone", generator="standalone", argv=(*locust, *run), env=env),)
    port = master_port or free_loopback_port()
    master_argv = (
        *locust, *run,
        "--master",
        "--master-bind-host", "127.0.0.1",
        "--master-bind-port", str(port),
        "--expect-workers", str(spec.workers),
        "--expect-workers-max-wait", str(max(1, math.ceil(spec.workers_connect_timeout_s))),
    )  # fmt: skip
    plans = [
        ProcessPlan(
            role="master",
            generator="master",
            argv=master_argv,
            env={**common_env, **spec.locust_env("master")},
        )
    ]
    for index in range(1, spec.workers + 1):
        generator = f"worker-{index}"
        worker_argv = (
            *locust,
            "-f", _locustfiles(spec),
            "--worker",
            "--master-host", "127.0.0.1",
            "--master-port", str(port),
            *quiet,
        )  # fmt: skip
        plans.append(
            ProcessPlan(
                role="worker",
                generator=generator,
                argv=worker_argv,
                env={**common_env, **spec.locust_env(generator)},
            )
        )
    return tuple(plans)
