"""Writes core/v1 Events the way the real components do, so ``kubectl describe`` and ``kubectl get
events`` read familiar: reason, message, ``source.component``/``host``, ``reportingComponent``, and
aggregation of repeats into one Event with a growing ``count`` (the client-go event recorder's
correlator, simplified to exact repeats).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.errors import StoreError
from pytest_meshcheck.lab.runtime.timefmt import rfc3339
from pytest_meshcheck.lab.store import GVR, Store

log = logging.getLogger(__name__)

EVENTS = GVR.core("events")


def object_reference(obj: Mapping[str, Any], *, field_path: str = "") -> dict[str, Any]:
    meta = obj.get("metadata", {})
    ref = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return {key: value for key, value in ref.items() if value}


class EventRecorder:
    """One component's event writer (``deployment-controller``, ``kubelet`` on a node ...)."""

    def __init__(self, store: Store, component: str, *, host: str = "") -> None:
        self._store = store
        self._component = component
        self._host = host
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}

    def normal(self, obj: Mapping[str, Any], reason: str, message: str, *, field_path: str = "") -> None:
        self.record(obj, "Normal", reason, message, field_path=field_path)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str, *, field_path: str = "") -> None:
        self.record(obj, "Warning", reason, message, field_path=field_path)

    def record(
        self, obj: Mapping[str, Any], event_type: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        """Best effort, like client-go's: a failure to write an event never fails the caller."""
        involved = object_reference(obj, field_path=field_path)
        namespace = involved.get("namespace") or "default"
        key = (involved.get("uid", ""), field_path, event_type, reason, message)
        try:
            with self._lock:
                known = self._recent.get(key)
            if known is not None and self._bump(*known):
                return
            created = self._create(namespace, involved, event_type, reason, message)
            with self._lock:
                if len(self._recent) > 4096:
                    self._recent.clear()
                self._recent[key] = (namespace, created)
        except StoreError as exc:
            log.debug("event %s/%s not recorded: %s", reason, message, exc)

    def _bump(self, namespace: str, name: str) -> bool:
        try:
            event = self._store.get(EVENTS, namespace, name)
        except StoreError:
            return False
        event["count"] = int(event.get("count", 1)) + 1
        event["lastTimestamp"] = rfc3339()
        try:
            self._store.update(EVENTS, event)
        except StoreError:
            return False
        return True

    def _create(
        self, namespace: str, involved: Mapping[str, Any], event_type: str, reason: str, message: str
    ) -> str:
        now = time.time()
        name = f"{involved.get('name', 'unknown')}.{secrets.token_hex(8)}"
        source: dict[str, str] = {"component": self._component}
        if self._host:
            source["host"] = self._host
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": dict(involved),
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
            "eventTime": None,
            "reportingComponent": self._component,
            "reportingInstance": self._host,
        }
        created = self._store.create(EVENTS, event, namespace=namespace)
        return str(created["metadata"]["name"])
