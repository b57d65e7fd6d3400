"""The reconcile loop every lab controller runs on: watch -> keys -> work queue -> reconcile.

As in client-go, events only say *which* object to look at; ``reconcile`` always reads the
current state from the store, so a missed or duplicated event costs nothing but a little work.
Keys can be requeued after a delay (for time-based conditions such as minReadySeconds and
progress deadlines), and a periodic resync re-enqueues everything as a safety net.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pytest_meshcheck.lab.errors import Conflict, NotFound, StoreError
from pytest_meshcheck.lab.store import GVR, Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
#: Maps a watched object (and the event type) to the keys of the primary objects it affects.
KeyMapper = Callable[[str, dict[str, Any]], Iterable[Key]]


def own_key(_event: str, obj: dict[str, Any]) -> Iterable[Key]:
    meta = obj.get("metadata", {})
    return [(str(meta.get("namespace", "")), str(meta.get("name", "")))]


class WorkQueue:
    """A de-duplicating queue of keys with delayed adds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._delayed: list[tuple[float, Key]] = []
        self._closed = False

    def add(self, key: Key) -> None:
        with self._cond:
            if key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + max(delay, 0.0), key))
            self._cond.notify()

    def get(self, timeout: float) -> Key | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, key = heapq.heappop(self._delayed)
                    if key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    return key
                if self._closed or now >= deadline:
                    return None
                wake = deadline if not self._delayed else min(deadline, self._delayed[0][0])
                self._cond.wait(max(wake - now, 0.001))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Controller:
    """Subclasses set ``name``, ``primary`` and ``watches`` and implement ``reconcile``."""

    name = "controller"
    primary: GVR
    resync_seconds = 30.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue = WorkQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[Any] = []

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(self.primary, own_key)]

    def reconcile(self, key: Key) -> float | None:
        """Bring ``key`` to its desired state; return a delay to look again, or None."""
        raise NotImplementedError

    def live(self, key: Key) -> dict[str, Any] | None:
        """The primary object at ``key``, or None once it is gone or being deleted: from then on
        garbage collection tears down what it owns, and reconciling would only recreate that."""
        namespace, name = key
        try:
            obj = self.store.get(self.primary, namespace, name)
        except NotFound:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return None
        return obj

    def start(self) -> None:
        for gvr, mapper in self.watches():
            watch = self.store.watch(gvr)
            self._watches.append(watch)
            thread = threading.Thread(
                target=self._pump, args=(watch, mapper), daemon=True, name=f"{self.name} watch {gvr}"
            )
            self._threads.append(thread)
        worker = threading.Thread(target=self._work, daemon=True, name=f"{self.name} worker")
        resync = threading.Thread(target=self._resync, daemon=True, name=f"{self.name} resync")
        self._threads += [worker, resync]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for watch in self._watches:
            watch.close()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _pump(self, watch: Any, mapper: KeyMapper) -> None:
        while not self._stop.is_set():
            event = watch.next(timeout=1.0)
            if event is None:
                if watch.closed:
                    return
                continue
            try:
                for key in mapper(event.type, event.object):
                    self.queue.add(key)
            except Exception:
                log.exception("%s: mapping a %s event failed", self.name, event.type)

    def _resync(self) -> None:
        while not self._stop.wait(self.resync_seconds):
            try:
                items, _ = self.store.list(self.primary)
            except StoreError:
                continue
            for obj in items:
                for key in own_key("SYNC", obj):
                    self.queue.add(key)

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                delay = self.reconcile(key)
            except (Conflict, NotFound):
                delay = 0.05
            except StoreError as exc:
                log.warning("%s: reconcile %s/%s: %s", self.name, key[0], key[1], exc)
                delay = 1.0
            except Exception:
                log.exception("%s: reconcile %s/%s crashed", self.name, key[0], key[1])
                delay = 2.0
            if delay is not None and not self._stop.is_set():
                self.queue.add_after(key, delay)


def owner_keys(kind: str) -> KeyMapper:
    """Map an owned object to its controlling owner of ``kind`` (same namespace)."""

    def mapper(_event: str, obj: dict[str, Any]) -> Iterable[Key]:
        meta = obj.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == kind:
                yield (str(meta.get("namespace", "")), str(ref.get("name", "")))

    return mapper


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(owner: dict[str, Any], candidates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates whose controller ownerReference is ``owner``. Matched by uid, not by name, so
    an owner recreated under the same name does not take over what its predecessor left behind."""
    uid = owner["metadata"].get("uid")
    return [
        obj
        for obj in candidates
        if any(
            ref.get("uid") == uid and ref.get("controller")
            for ref in obj["metadata"].get("ownerReferences") or []
        )
    ]
