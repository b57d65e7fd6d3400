from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_meshcheck.lab.cluster import LabCore, default_registry
from pytest_meshcheck.lab.store import GVR

from .testimages import TEST_IMAGES


@pytest.fixture
def core() -> Iterator[LabCore]:
    lab = LabCore("test", registry=default_registry(TEST_IMAGES), base_backoff=0.3, max_backoff=1.0)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


PODS = GVR.core("pods")
DEPLOYMENTS = GVR.parse("apps/v1/deployments")
SERVICES = GVR.core("services")
