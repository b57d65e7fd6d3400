"""Teardown that survives Ctrl-C and SIGTERM.

CI systems stop jobs with SIGTERM and people with Ctrl-C, usually exactly while a slow EKS step is
running. SIGTERM (and SIGHUP) are turned into ``KeyboardInterrupt`` so the same unwinding path
runs for all three: pytest's own KeyboardInterrupt handling still finalises session fixtures.
While teardown runs, further signals are reported and ignored, since interrupting a teardown is
what leaks resources.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_TERMINATING = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


def _install(handler: Callable[[int, FrameType | None], Any], signums: tuple[int, ...]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; pytest's main loop runs there
    return {signum: signal.signal(signum, handler) for signum in signums}


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise ``KeyboardInterrupt`` like Ctrl-C does."""
    previous = _install(_raise_interrupt, _TERMINATING)
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def shielded(write: Callable[[str], None] = lambda text: print(text, file=sys.stderr)) -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM within the block, saying why."""

    def refuse(signum: int, frame: FrameType | None) -> None:
        write(
            f"meshcheck: {signal.Signals(signum).name} ignored: teardown in progress, "
            "interrupting it would leave paid resources behind"
        )

    previous = _install(refuse, (signal.SIGINT, *_TERMINATING))
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def teardown_on_interrupt(
    teardown: Callable[[], None], write: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
) -> Iterator[None]:
    """Run ``teardown`` (shielded) if the block ends with any exception, including Ctrl-C and
    SIGTERM, then re-raise it. A teardown failure is chained, never hides the original cause."""
    with terminate_as_interrupt():
        try:
            yield
        except BaseException:
            with shielded(write):
                teardown()
            raise
