"""What the mesh needs from the rest of the lab, as small Protocols.

istiod and the proxies never import the lab's store or runtime: istiod gets an object source through
``WorkloadContext.services`` and everything reads the fault switchboard through ``FaultSource``. Tests
hand in in-memory fakes; the lab hands in its store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pytest_meshcheck.lab.resources import GVR

#: Keys of ``WorkloadContext.services`` the mesh reads.
STORE_SERVICE = "store"
FAULTS_SERVICE = "faults"


#: A group/version/resource address: the lab's own data type (a plain value, not the store).
ResourceRef = GVR


def error_code(exc: BaseException) -> int:
    """The HTTP code a store error carries (500 when it carries none)."""
    code = getattr(exc, "code", 500)
    return code if isinstance(code, int) else 500


class FaultSource(Protocol):
    """The lab's fault switchboard: which named faults (lab/faults.py) are active right now."""

    def active(self) -> set[str]: ...


class NoFaults:
    """The switchboard of a healthy lab."""

    def active(self) -> set[str]:
        return set()


class StaticFaults:
    """A fixed set of faults (tests, and ``--meshcheck-lab-faults`` when nothing toggles them)."""

    def __init__(self, names: set[str] | None = None) -> None:
        self.names: set[str] = set(names or ())

    def active(self) -> set[str]:
        return set(self.names)


class WatchEventLike(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def object(self) -> Mapping[str, Any]: ...


class WatchLike(Protocol):
    def next(self, timeout: float) -> WatchEventLike | None: ...

    def close(self) -> None: ...


class ObjectSource(Protocol):
    """The subset of the lab's store istiod uses (``lab/store.py`` satisfies it). ``gvr`` is the
    store's GVR (anything with ``group``/``version``/``resource``), or None in ``watch`` for every
    resource; objects are JSON dicts as the Kubernetes API serves them. Failures raise exceptions
    carrying an HTTP ``code`` (404 when missing, 409 on conflicts)."""

    def list(
        self, gvr: Any, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, gvr: Any, namespace: str | None = None, *, resource_version: str | None = None
    ) -> Any: ...

    def get(self, gvr: Any, namespace: str | None, name: str) -> dict[str, Any]: ...

    def create(self, gvr: Any, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]: ...

    def update(self, gvr: Any, obj: dict[str, Any]) -> dict[str, Any]: ...


def faults_of(services: Mapping[str, Any]) -> FaultSource:
    """The switchboard from a workload's services, a healthy one when the lab gives none."""
    source = services.get(FAULTS_SERVICE)
    if source is None or not hasattr(source, "active"):
        return NoFaults()
    return source  # type: ignore[no-any-return]
