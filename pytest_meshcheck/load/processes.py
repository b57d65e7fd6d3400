"""One child process we start, signal, reap and account for.

The generator's own CPU time is part of an honest load result (a saturated generator measures
itself, not the mesh), so each child is reaped here with ``wait4`` to get its exact resource usage,
and sampled through ``/proc`` while it runs to know how busy it was during the load window.
Reaping happens in one watcher thread per child; signals are sent under the same lock, so a signal
can never reach a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_meshcheck.errors import LoadError
from pytest_meshcheck.load.cpu import CpuSample, read_proc_cpu_seconds

_SAMPLE_INTERVAL_S = 0.25


class ChildProcess:
    """A started process whose output goes to a log file and whose exit is observed exactly once."""

    def __init__(
        self,
        *,
        role: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.role = role
        self.argv = tuple(argv)
        self.log_path = log_path
        self._lock = threading.Lock()
        self._exited = threading.Event()
        self._returncode: int | None = None
        self._cpu_total_s: float | None = None
        self._samples: list[CpuSample] = []
        self._signalled = False
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own process group: a Ctrl-C in the terminal reaches pytest, which then stops
                    # the run in order, instead of every Locust process at once.
                    start_new_session=True,
                )
            except OSError as exc:
                raise LoadError(f"could not start Locust {role}: {exc}") from exc
        self.pid = self._popen.pid
        self.started_at = time.time()
        self.exited_at: float | None = None
        self._sample()
        threading.Thread(target=self._watch, name=f"locust-{role}-reaper", daemon=True).start()
        threading.Thread(target=self._sample_loop, name=f"locust-{role}-cpu", daemon=True).start()

    # -- observing ---------------------------------------------------------------------------

    def _sample(self) -> None:
        cpu = read_proc_cpu_seconds(self.pid)
        if cpu is not None:
            with self._lock:
                if self._returncode is None:
                    self._samples.append(CpuSample(at=time.time(), cpu_s=cpu))

    def _sample_loop(self) -> None:
        while not self._exited.wait(_SAMPLE_INTERVAL_S):
            self._sample()

    def _watch(self) -> None:
        waitid = getattr(os, "waitid", None)
        if waitid is not None:
            # Wait for the exit without reaping, so a last /proc sample and signals stay safe.
            with contextlib.suppress(ChildProcessError):
                waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            self._sample()
        with self._lock:
            try:
                _, status, usage = os.wait4(self.pid, 0)
                self._returncode = os.waitstatus_to_exitcode(status)
                self._cpu_total_s = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                self._returncode = -1
            self._popen.returncode = self._returncode
            self.exited_at = time.time()
            if self._cpu_total_s is not None:
                self._samples.append(CpuSample(at=self.exited_at, cpu_s=self._cpu_total_s))
        self._exited.set()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def signalled(self) -> bool:
        """Whether we signalled it: its exit status then says little about its health."""
        return self._signalled

    @property
    def cpu_total_s(self) -> float | None:
        """Exact CPU seconds over the whole life, known once it has exited."""
        return self._cpu_total_s

    def cpu_samples(self) -> tuple[CpuSample, ...]:
        with self._lock:
            return tuple(self._samples)

    def wait(self, timeout: float) -> bool:
        """True once the process has exited and been reaped; False if ``timeout`` passed first."""
        return self._exited.wait(timeout)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_chars:].decode("utf-8", "replace")

    # -- controlling -------------------------------------------------------------------------

    def send(self, sig: signal.Signals) -> None:
        with self._lock:
            if self._returncode is None:
                self._signalled = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)

    def stop(self, grace_s: float) -> None:
        """SIGINT (Locust then writes its reports), then SIGKILL after ``grace_s``."""
        if self._exited.is_set():
            return
        self.send(signal.SIGINT)
        if not self.wait(grace_s):
            self.send(signal.SIGKILL)
            self.wait(10.0)
