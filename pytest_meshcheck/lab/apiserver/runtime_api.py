"""What the API server needs from the node runtime: container logs and exec.

The API server only translates HTTP (``pods/log``) and WebSocket (``pods/exec``) into these calls;
the runtime (the lab's kubelet) owns containers and knows how to run a command in one. Errors are
reported by raising ``pytest_meshcheck.lab.errors`` types (``NotFound`` for an unknown container,
``BadRequest`` for a container that is not running), which the API server returns as ``Status``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import BinaryIO, Protocol


class Writer(Protocol):
    """A binary sink (one exec stream): ``write`` blocks until the bytes are sent or raises
    ``OSError`` once the client is gone."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class PodRuntime(Protocol):
    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool,
        tail_lines: int | None,
        previous: bool,
        timestamps: bool,
        stop: threading.Event,
    ) -> Iterator[bytes]:
        """Yield the container's log as it is (lines ending in ``\\n``). With ``follow`` keep
        yielding new output until ``stop`` is set or the container ends; check ``stop`` at least
        every half second while waiting. ``previous`` is the log of the last terminated instance
        (``BadRequest`` when there is none)."""
        ...

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: list[str],
        *,
        stdin: BinaryIO | None,
        stdout: Writer,
        stderr: Writer,
        tty: bool,
    ) -> int:
        """Run ``command`` in the container and return its exit code. ``stdin`` (when the client
        attached one) reads until the client closes it; reading returns b"" at EOF."""
        ...
