"""The garbage collector and the namespace controller: the two controllers that finish deletions.

- Owner references: when every owner of an object is gone, the object is deleted (background
  propagation). An owner deleted with ``propagationPolicy=Foreground`` carries the
  ``foregroundDeletion`` finalizer until its dependents are gone; with ``Orphan`` it carries
  ``orphan`` until its dependents no longer reference it.
- Namespaces: a namespace being deleted has its contents deleted, then its ``kubernetes``
  finalizer removed, at which point the store drops it.

Both run on one thread that sweeps the whole store after every burst of changes (and once a
second while idle, so nothing is missed if a write raced a sweep). A sweep is a scan of a few
hundred objects on a lab, far cheaper than the bookkeeping of an incremental graph.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pytest_meshcheck.lab.errors import Conflict, NotFound, StoreError
from pytest_meshcheck.lab.resources import GVR, ResourceKind
from pytest_meshcheck.lab.store import Store, Watch

log = logging.getLogger(__name__)

NAMESPACES = GVR.core("namespaces")
_IDLE_SWEEP_SECONDS = 1.0
#: A burst of changes is swept once it has been quiet this long (or after _BURST_SECONDS).
_QUIET_SECONDS = 0.05
_BURST_SECONDS = 0.3


class GarbageCollector:
    """Call ``start`` once; ``stop`` joins the thread (bounded by ``timeout``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Watch | None = None
        self._swept = threading.Condition()
        self._sweeps = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._watch = self._store.watch(None, resource_version=self._store.resource_version)
        self._thread = threading.Thread(target=self._run, name="lab-garbage-collector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_for_sweep(self, timeout: float) -> bool:
        """Block until one full sweep has started and finished after this call (for tests and
        for ``lab down`` to drain pending deletions)."""
        with self._swept:
            target = self._sweeps + 2
            return self._swept.wait_for(lambda: self._sweeps >= target, timeout)

    def _run(self) -> None:
        assert self._watch is not None
        while not self._stop.is_set():
            event = self._watch.next(_IDLE_SWEEP_SECONDS)
            if self._watch.closed:
                return
            if event is not None:
                self._settle()
            try:
                self.sweep()
            except Exception:  # a controller must outlive any single bad object
                log.exception("garbage collector sweep failed")
            with self._swept:
                self._sweeps += 1
                self._swept.notify_all()

    def _settle(self) -> None:
        """Coalesce a burst of changes (a rollout, a namespace full of deletions) into one
        sweep: wait until the stream is quiet for a moment, but never longer than a bound."""
        assert self._watch is not None
        deadline = time.monotonic() + _BURST_SECONDS
        while time.monotonic() < deadline and self._watch.next(_QUIET_SECONDS) is not None:
            pass

    # -- one pass --------------------------------------------------------------------------------

    def sweep(self) -> None:
        objects = self._store.all_metadata()
        by_uid = {obj["metadata"]["uid"]: (kind, obj) for kind, obj in objects}
        dependents: dict[str, list[tuple[ResourceKind, dict[str, Any]]]] = {}
        for kind, obj in objects:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(str(ref.get("uid", "")), []).append((kind, obj))
        for kind, obj in objects:
            meta = obj["metadata"]
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp"):
                if "foregroundDeletion" in finalizers:
                    self._foreground(kind, obj, dependents.get(meta["uid"], []))
                if "orphan" in finalizers:
                    self._orphan(kind, obj, dependents.get(meta["uid"], []))
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp"):
                live = [r for r in refs if str(r.get("uid", "")) in by_uid]
                if not live:
                    self._delete(kind, obj, "Background")
        for kind, obj in objects:
            if kind.storage_key == ("", "namespaces") and obj["metadata"].get("deletionTimestamp"):
                self._terminate_namespace(obj, objects)

    def _foreground(
        self, kind: ResourceKind, owner: dict[str, Any], children: list[tuple[ResourceKind, dict[str, Any]]]
    ) -> None:
        for child_kind, child in children:
            if not child["metadata"].get("deletionTimestamp"):
                self._delete(child_kind, child, "Foreground")
        if not children:
            self._drop_finalizer(kind, owner, "foregroundDeletion")

    def _orphan(
        self, kind: ResourceKind, owner: dict[str, Any], children: list[tuple[ResourceKind, dict[str, Any]]]
    ) -> None:
        uid = owner["metadata"]["uid"]
        for child_kind, child in children:
            self._edit(
                child_kind,
                child,
                lambda meta: meta.__setitem__(
                    "ownerReferences", [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
                ),
            )
        self._drop_finalizer(kind, owner, "orphan")

    def _terminate_namespace(
        self, namespace: dict[str, Any], objects: list[tuple[ResourceKind, dict[str, Any]]]
    ) -> None:
        name = namespace["metadata"]["name"]
        remaining = [(k, o) for k, o in objects if k.namespaced and o["metadata"].get("namespace") == name]
        for kind, obj in remaining:
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(kind, obj, "Background")
        if remaining:
            return
        if (namespace.get("spec") or {}).get("finalizers"):
            finalized = dict(namespace)
            finalized["spec"] = {**(namespace.get("spec") or {}), "finalizers": []}
            with contextlib.suppress(Conflict, NotFound):
                self._store.update(NAMESPACES, finalized, subresource="finalize")

    # -- store calls that tolerate races -----------------------------------------------------------

    def _delete(self, kind: ResourceKind, obj: dict[str, Any], propagation: str) -> None:
        meta = obj["metadata"]
        try:
            self._store.delete(
                kind.gvr,
                meta.get("namespace"),
                meta["name"],
                propagation=propagation,
                preconditions_uid=meta["uid"],
            )
        except (NotFound, Conflict):
            pass
        except StoreError as exc:
            log.warning("garbage collector could not delete %s %s: %s", kind.resource, meta["name"], exc)

    def _drop_finalizer(self, kind: ResourceKind, obj: dict[str, Any], finalizer: str) -> None:
        self._edit(
            kind,
            obj,
            lambda meta: meta.__setitem__(
                "finalizers", [f for f in meta.get("finalizers") or [] if f != finalizer]
            ),
        )

    def _edit(
        self, kind: ResourceKind, obj: dict[str, Any], change: Callable[[dict[str, Any]], None]
    ) -> None:
        meta = obj["metadata"]
        for _attempt in range(5):
            try:
                current = self._store.get(kind.gvr, meta.get("namespace"), meta["name"])
                if current["metadata"]["uid"] != meta["uid"]:
                    return
                change(current["metadata"])
                self._store.update(kind.gvr, current)
                return
            except Conflict:
                continue
            except NotFound:
                return
