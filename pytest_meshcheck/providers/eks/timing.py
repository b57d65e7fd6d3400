"""Deadlines and polling with an injectable clock, so waits are bounded and tests never sleep.

botocore waiters cover most waits; this covers the rest (IAM propagation, ELBs that Kubernetes
deletes asynchronously, DependencyViolation while AWS releases ENIs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_meshcheck.errors import ReadinessTimeout

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How long waits may take and how often they look. Tests pass a fake clock and sleep."""

    timeout: float
    delay: float = 15.0
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def waiter_config(self, timeout: float | None = None) -> dict[str, int]:
        """A botocore ``WaiterConfig`` that gives up after ``timeout`` (default: the run's)."""
        budget = self.timeout if timeout is None else timeout
        delay = max(0, round(self.delay))
        attempts = max(1, math.ceil(budget / delay) if delay else 1 + round(budget))
        return {"Delay": delay, "MaxAttempts": attempts}

    def poll(
        self,
        what: str,
        attempt: Callable[[], tuple[bool, T]],
        *,
        timeout: float | None = None,
        describe: Callable[[T], str] = repr,
    ) -> T:
        """Call ``attempt`` until it reports done; raise ``ReadinessTimeout`` at the deadline."""
        budget = self.timeout if timeout is None else timeout
        deadline = self.monotonic() + budget
        while True:
            done, value = attempt()
            if done:
                return value
            if self.monotonic() >= deadline:
                raise ReadinessTimeout(what, timeout_s=budget, last_state=describe(value))
            self.sleep(self.delay)


def wait(waiter: Any, timing: Timing, what: str, timeout: float | None = None, **params: Any) -> None:
    """Run a botocore waiter with an explicit config; its timeout becomes ``ReadinessTimeout``."""
    from botocore.exceptions import WaiterError

    config = timing.waiter_config(timeout)
    try:
        waiter.wait(WaiterConfig=config, **params)
    except WaiterError as exc:
        last = exc.last_response or {}
        state = str(last.get("Error", last))[:500] if isinstance(last, dict) else ""
        if "Max attempts exceeded" in str(exc):
            raise ReadinessTimeout(
                what, timeout_s=timeout if timeout is not None else timing.timeout, last_state=state
            ) from exc
        from pytest_meshcheck.errors import ProviderError

        raise ProviderError(f"AWS reported a failure while waiting for {what}: {exc}") from exc
