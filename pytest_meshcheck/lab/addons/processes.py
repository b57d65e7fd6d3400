"""Child processes owned by lab workloads: started with their output in the container log, and
stopped for certain (terminate, wait, kill), also when the interpreter exits without a stop.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import threading
from collections.abc import Sequence

from pytest_meshcheck.lab.contract import LogSink

#: How long a process gets to exit after SIGTERM before it is killed.
TERM_GRACE = 10.0

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for process in leftovers:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


atexit.register(_kill_leftovers)


class ChildProcess:
    """One process whose stdout and stderr lines go to a container log."""

    def __init__(self, argv: Sequence[str], log: LogSink, *, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self._log = log
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._pumps: list[threading.Thread] = []
        self._tail: list[str] = []
        self._tail_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            start_new_session=True,
        )
        with _live_lock:
            _live.add(process)
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            pump = threading.Thread(target=self._pump, args=(stream, name), daemon=True, name=f"log-{name}")
            pump.start()
            self._pumps.append(pump)

    def _pump(self, stream: object, name: str) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log.write(line, stream=name)
            with self._tail_lock:
                self._tail = [*self._tail[-19:], line]

    def tail(self) -> list[str]:
        """The last lines the process wrote (for start-failure messages)."""
        with self._tail_lock:
            return list(self._tail)

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def wait(self, timeout: float) -> int | None:
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = TERM_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace``; returns the exit code. Idempotent."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    process.kill()
                process.wait(timeout=grace)
        for pump in self._pumps:
            pump.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        with _live_lock:
            _live.discard(process)
        return process.returncode
