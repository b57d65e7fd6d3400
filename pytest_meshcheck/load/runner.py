"""Running Locust in its own processes, in the background, and collecting what it measured.

Locust is never imported here: gevent's monkey patching would break pytest-xdist and the
kubernetes client in the pytest process. A ``LoadRun`` starts ``python -m locust`` processes
(one standalone, or a master and N workers on this machine), lets them run for the spec's
duration (Locust stops by itself), and reads the result from the files they write. It is a
context manager so load can accompany other checks and is stopped and collected reliably when the
check's body raises::

    with LoadRun(spec) as run:
        check_the_graph()          # load flows meanwhile
    result = run.result()          # stopped (SIGINT, then SIGKILL) on leaving the block
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import TracebackType

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.assemble import ProcessOutcome, build_result
from pytest_meshcheck.load.command import OutputFiles, ProcessPlan, plan_processes
from pytest_meshcheck.load.locust_output import (
    FinalAccount,
    StatsTable,
    final_account,
    stats_from_csv,
    stats_from_json,
)
from pytest_meshcheck.load.processes import ChildProcess
from pytest_meshcheck.load.results import LoadArtifacts, LoadResult
from pytest_meshcheck.load.spec import LoadSpec

#: Seconds for Locust to start (imports), beyond the run's own duration, before a wait gives up.
STARTUP_ALLOWANCE_S = 30.0
#: Seconds a process gets to write its reports after SIGINT before it is killed.
STOP_GRACE_S = 15.0


def _evidence(processes: tuple[ChildProcess, ...]) -> dict[str, str]:
    return {f"locust {p.role} {p.pid} log": p.log_tail() for p in processes}


class LoadRun:
    """A handle on one load run: ``start``, then ``wait`` or ``stop``, then ``result``."""

    def __init__(self, spec: LoadSpec, *, python: str | None = None) -> None:
        self.spec = spec
        self.python = python or sys.executable
        self.files = OutputFiles(directory=spec.output_dir.resolve())
        self._plans: tuple[ProcessPlan, ...] = ()
        self._processes: tuple[ChildProcess, ...] = ()
        self._stop_requested = False
        self._started_at: float | None = None
        self._result: LoadResult | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LoadRun:
        """Start the Locust processes and return at once; the run proceeds in the background."""
        if self._processes:
            raise LoadError("this load run was already started; create a new LoadRun for another run")
        self._check_startable()
        self.files.directory.mkdir(parents=True, exist_ok=True)
        self.files.clear()
        self._plans = plan_processes(self.spec, self.files, python=self.python)
        started: list[ChildProcess] = []
        self._started_at = time.time()
        try:
            for plan in self._plans:
                started.append(
                    ChildProcess(
                        role=plan.role,
                        argv=plan.argv,
                        env=plan.env,
                        cwd=self.files.directory,
                        log_path=self.files.log(plan.generator),
                    )
                )
        except LoadError:
            for process in started:
                process.stop(grace_s=STOP_GRACE_S)
            raise
        self._processes = tuple(started)
        return self

    def _check_startable(self) -> None:
        if self.python == sys.executable and importlib.util.find_spec("locust") is None:
            raise LoadError(
                f"Locust is not installed for {sys.executable}; install it with "
                f"`{sys.executable} -m pip install locust`"
            )
        locustfile = self.spec.locustfile
        if not locustfile.is_file():
            raise LoadError(f"locustfile {locustfile} does not exist (see --meshcheck-locustfile)")
        if locustfile.suffix != ".py" or "," in str(locustfile):
            raise LoadError(f"locustfile {locustfile} must be a .py file whose path has no comma")

    @property
    def started(self) -> bool:
        return bool(self._processes)

    @property
    def running(self) -> bool:
        return any(p.returncode is None for p in self._processes)

    def default_timeout(self) -> float:
        """Longest a run can legitimately take: start-up, workers connecting, duration, stopping."""
        spec = self.spec
        connect = spec.workers_connect_timeout_s if spec.workers else 0.0
        return STARTUP_ALLOWANCE_S + connect + spec.run_time_s + spec.stop_timeout_s + STOP_GRACE_S

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end by itself; False if it is still running after ``timeout``.

        A process that dies early (bad locustfile, no Locust, a crash) ends the wait at once; the
        standalone process or the master ending ends the run, and its workers are given
        ``STOP_GRACE_S`` to follow before they are stopped.
        """
        self._require_started()
        limit = self.default_timeout() if timeout is None else timeout
        deadline = time.monotonic() + limit
        lead = self._processes[0]
        while True:
            remaining = deadline - time.monotonic()
            if lead.wait(min(max(remaining, 0.0), 0.2)):
                break
            crashed = [p for p in self._processes[1:] if p.returncode not in (None, 0)]
            if crashed:
                self.stop()
                return True
            if remaining <= 0:
                return False
        if lead.returncode == 0:
            for worker in self._processes[1:]:
                worker.wait(max(0.0, min(STOP_GRACE_S, deadline - time.monotonic())))
        self._stop_stragglers()
        return not self.running

    def stop(self) -> None:
        """Stop gracefully: SIGINT to the standalone process or master, then its workers; SIGKILL
        whatever does not exit within ``STOP_GRACE_S``. Safe to call at any time, more than once."""
        if not self._processes:
            return
        if self.running:
            self._stop_requested = True
        lead = self._processes[0]
        lead.stop(grace_s=STOP_GRACE_S)
        for worker in self._processes[1:]:
            # A master that quits tells its workers to quit; give them the time to send final stats.
            worker.wait(STOP_GRACE_S if lead.returncode == 0 else 1.0)
        self._stop_stragglers()

    def _stop_stragglers(self) -> None:
        for process in self._processes[1:]:
            process.stop(grace_s=STOP_GRACE_S)

    def __enter__(self) -> LoadRun:
        if not self._processes:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_started(self) -> None:
        if not self._processes:
            raise LoadError("the load run has not been started")

    # -- outcome --------------------------------------------------------------------------------

    def result(self) -> LoadResult:
        """What the run measured; raises ``LoadError`` when the generator itself failed."""
        if self._result is not None:
            return self._result
        self._require_started()
        if self.running:
            raise LoadError("the load run is still going: call wait() or stop() before result()")
        self._check_exits()
        self._result = build_result(
            self.spec,
            target_url=self.spec.target_url,
            table=self._stats_table(),
            accounts=self._final_accounts(),
            processes=tuple(
                ProcessOutcome(
                    role=plan.role,
                    generator=plan.generator,
                    exit_code=process.returncode,
                    pid=process.pid,
                    cpu_s=process.cpu_total_s,
                    cpu_samples=process.cpu_samples(),
                )
                for plan, process in zip(self._plans, self._processes, strict=True)
            ),
            artifacts=self._artifacts(),
            stopped_early=self._stop_requested,
            origin="local",
        )
        return self._result

    def _check_exits(self) -> None:
        for process in self._processes:
            code = process.returncode
            if code == 0 or process.signalled:
                # Stopped by us: whether its output is usable is decided by reading the output.
                continue
            tail = process.log_tail()
            hint = ""
            if "No module named locust" in tail:
                hint = f" (Locust is not installed for {self.python})"
            elif "Could not find" in tail or "Traceback" in tail:
                hint = " (see its log: the locustfile may not import, or Locust crashed)"
            last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
            raise LoadError(
                f"Locust {process.role} (pid {process.pid}) exited with code {code}{hint}: "
                f"{last_line.strip()!r} (log: {process.log_path})",
                evidence=_evidence(self._processes),
            )

    def _stats_table(self) -> StatsTable:
        if self.files.json.exists():
            return stats_from_json(self.files.json)
        if self.files.stats_csv.exists():
            return stats_from_csv(self.files.stats_csv)
        raise LoadError(
            f"Locust wrote no statistics to {self.files.directory}: it was stopped before it "
            "could write them",
            evidence=_evidence(self._processes),
        )

    def _final_accounts(self) -> dict[str, FinalAccount]:
        accounts = {}
        for plan in self._plans:
            path = self.files.final_report(plan.generator)
            if path.exists():
                accounts[plan.generator] = final_account(path)
        return accounts

    def _artifacts(self) -> LoadArtifacts:
        def existing(path: Path) -> Path | None:
            return path if path.exists() else None

        files = self.files
        return LoadArtifacts(
            stats_csv=existing(files.stats_csv),
            history_csv=existing(files.history_csv),
            failures_csv=existing(files.failures_csv),
            exceptions_csv=existing(files.exceptions_csv),
            json=existing(files.json),
            html=existing(files.html),
            logs=tuple(p.log_path for p in self._processes if p.log_path.exists()),
        )
