"""Containers with no server of their own (the ``curl`` and ``sleep`` samples).

They run ``sleep infinity`` upstream: nothing listens, and they are used only through exec,
which the lab shell answers for every container.
"""

from __future__ import annotations

from pytest_meshcheck.lab.contract import WorkloadContext


class Idle:
    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        """Nothing to bind: the runtime keeps the container running until it is stopped."""

    def stop(self) -> None:
        """Nothing to close."""


def idle_factory(ctx: WorkloadContext) -> Idle:
    return Idle(ctx)
