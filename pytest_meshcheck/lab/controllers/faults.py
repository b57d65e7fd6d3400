"""The lab's fault switchboard, kept in a ConfigMap so faults can be switched while the lab runs.

``kube-system/meshcheck-lab-faults`` (key ``faults``: a comma list of names from ``lab/faults.py``)
is the one place the active faults live: the lab seeds it at start from ``--meshcheck-lab-faults``,
anyone with the kubeconfig can change it (``kubectl edit``, a CLI command), and this controller
mirrors it into the ``FaultSwitchboard`` that workloads read through
``WorkloadContext.services["faults"]`` (``active() -> set[str]``). Unknown names are ignored, and
reported as a Warning event on the ConfigMap.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import Any

from pytest_meshcheck.lab.controllers.base import Controller, Key, KeyMapper
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound
from pytest_meshcheck.lab.faults import FAULTS
from pytest_meshcheck.lab.store import GVR, Store

CONFIGMAPS = GVR.core("configmaps")
FAULTS_NAMESPACE = "kube-system"
FAULTS_CONFIGMAP = "meshcheck-lab-faults"
FAULTS_KEY = "faults"


class FaultSwitchboard:
    """Which faults are active right now (thread-safe; read on every request by workloads)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._names: frozenset[str] = frozenset(names)

    def active(self) -> set[str]:
        with self._lock:
            return set(self._names)

    def set(self, names: Iterable[str]) -> None:
        with self._lock:
            self._names = frozenset(names)


def parse_fault_list(text: str) -> list[str]:
    return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


def _configmap_key(_event: str, obj: dict[str, Any]) -> list[Key]:
    meta = obj.get("metadata", {})
    if meta.get("namespace") == FAULTS_NAMESPACE and meta.get("name") == FAULTS_CONFIGMAP:
        return [(FAULTS_NAMESPACE, FAULTS_CONFIGMAP)]
    return []


class FaultController(Controller):
    name = "fault-switchboard"
    primary = CONFIGMAPS

    def __init__(self, store: Store, switchboard: FaultSwitchboard) -> None:
        super().__init__(store)
        self.switchboard = switchboard
        self.events = EventRecorder(store, "meshcheck-lab")

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(CONFIGMAPS, _configmap_key)]

    def seed(self, names: Iterable[str]) -> None:
        """Write the starting faults (the ConfigMap is the source of truth from then on)."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": FAULTS_CONFIGMAP,
                "namespace": FAULTS_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "meshcheck-lab"},
            },
            "data": {FAULTS_KEY: ",".join(names)},
        }
        with contextlib.suppress(AlreadyExists):
            self.store.create(CONFIGMAPS, body, namespace=FAULTS_NAMESPACE)
        self.reconcile((FAULTS_NAMESPACE, FAULTS_CONFIGMAP))

    def reconcile(self, key: Key) -> float | None:
        if key != (FAULTS_NAMESPACE, FAULTS_CONFIGMAP):
            return None
        try:
            configmap = self.store.get(CONFIGMAPS, *key)
        except NotFound:
            self.switchboard.set(())
            return None
        names = parse_fault_list(str((configmap.get("data") or {}).get(FAULTS_KEY, "")))
        unknown = [name for name in names if name not in FAULTS]
        if unknown:
            self.events.warning(
                configmap, "UnknownFault", f"ignoring unknown lab faults {unknown}; known: {sorted(FAULTS)}"
            )
        self.switchboard.set(name for name in names if name in FAULTS)
        return None
