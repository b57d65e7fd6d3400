"""Per-container log buffers: what ``kubectl logs`` (with ``-f``, ``--tail``, ``--previous``,
``--timestamps``) reads.

A buffer is bounded so a chatty workload cannot grow the lab without limit; followers block on a
condition variable and wake on every new line or when the container ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

_MAX_LINES = 20000


@dataclass(frozen=True)
class LogLine:
    timestamp: float
    stream: str
    text: str

    def render(self, *, timestamps: bool) -> str:
        if not timestamps:
            return self.text + "\n"
        stamp = datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        return f"{stamp} {self.text}\n"


class LogBuffer:
    """One container instance's output (``contract.LogSink``)."""

    def __init__(self) -> None:
        self._lines: deque[LogLine] = deque(maxlen=_MAX_LINES)
        self._cond = threading.Condition()
        self._appended = 0
        self._closed = False

    def write(self, line: str, *, stream: str = "stdout") -> None:
        with self._cond:
            for part in line.rstrip("\n").split("\n"):
                self._lines.append(LogLine(time.time(), stream, part))
                self._appended += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The container ended: followers finish after the last line."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def snapshot(self, *, tail: int | None = None, since: float | None = None) -> list[LogLine]:
        with self._cond:
            lines = list(self._lines)
        if since is not None:
            lines = [line for line in lines if line.timestamp >= since]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return lines

    def follow(
        self,
        *,
        tail: int | None = None,
        since: float | None = None,
        stop: threading.Event | None = None,
        poll: float = 0.5,
    ) -> Iterator[LogLine]:
        """Existing lines, then new ones as they come, until the buffer closes or ``stop`` is set."""
        with self._cond:
            lines = list(self._lines)
            seen = self._appended
        if since is not None:
            lines = [line for line in lines if line.timestamp >= since]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        yield from lines
        while stop is None or not stop.is_set():
            with self._cond:
                if self._appended == seen and not self._closed:
                    self._cond.wait(timeout=poll)
                fresh_count = self._appended - seen
                fresh = list(self._lines)[-fresh_count:] if fresh_count > 0 else []
                seen = self._appended
                finished = self._closed and not fresh
            yield from fresh
            if finished:
                return
