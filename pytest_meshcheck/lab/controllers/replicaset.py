"""The ReplicaSet controller: keeps ``spec.replicas`` active pods that match the template.

Pods are named ``<rs>-<5 random chars>``, carry an ownerReference with ``controller: true``, and
on scale-down the least valuable go first (unscheduled, then not ready, then the youngest), as in
kube-controller-manager. Status counts replicas, fully labeled, ready and available pods.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterable
from typing import Any

from pytest_meshcheck.lab.controllers.base import (
    Controller,
    Key,
    KeyMapper,
    controlled_by,
    own_key,
    owner_keys,
)
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.controllers.pods import (
    is_active,
    is_available,
    is_ready,
    labels_match,
    ready_since,
)
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound, StoreError
from pytest_meshcheck.lab.store import GVR, Store

REPLICASETS = GVR.parse("apps/v1/replicasets")
PODS = GVR.core("pods")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: Pods created per reconcile, as the real controller's slow-start batches.
_MAX_BURST = 500


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    primary = REPLICASETS

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "replicaset-controller")

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(REPLICASETS, own_key), (PODS, owner_keys("ReplicaSet"))]

    def reconcile(self, key: Key) -> float | None:
        rs = self.live(key)
        if rs is None:
            return None
        everything, _ = self.store.list(PODS, rs["metadata"]["namespace"])
        pods = controlled_by(rs, everything)
        self._adopt(rs, pods, everything)
        active = [pod for pod in pods if is_active(pod)]
        wanted = int(rs.get("spec", {}).get("replicas", 1))
        diff = wanted - len(active)
        if diff > 0:
            for _ in range(min(diff, _MAX_BURST)):
                self._create_pod(rs)
        elif diff < 0:
            for pod in self._deletion_order(active)[:-diff]:
                self._delete_pod(rs, pod)
        return self._write_status(rs, None if diff else pods)

    def _adopt(
        self, rs: dict[str, Any], pods: list[dict[str, Any]], candidates: list[dict[str, Any]]
    ) -> None:
        """Orphans matching the selector become ours (the controller's adoption)."""
        selector = rs.get("spec", {}).get("selector")
        for pod in candidates:
            pod_meta = pod["metadata"]
            if pod_meta.get("deletionTimestamp") or any(
                r.get("controller") for r in pod_meta.get("ownerReferences") or []
            ):
                continue
            if not labels_match(selector, pod_meta.get("labels") or {}):
                continue
            pod_meta.setdefault("ownerReferences", []).append(self._owner_ref(rs))
            try:
                pods.append(self.store.update(PODS, pod))
            except StoreError:
                continue

    @staticmethod
    def _owner_ref(rs: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": rs["metadata"]["name"],
            "uid": rs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _create_pod(self, rs: dict[str, Any]) -> None:
        template = copy.deepcopy(rs.get("spec", {}).get("template") or {})
        meta = rs["metadata"]
        pod_meta = template.get("metadata") or {}
        pod_meta.pop("name", None)
        pod_meta["namespace"] = meta["namespace"]
        pod_meta["ownerReferences"] = [self._owner_ref(rs)]
        for _ in range(5):
            suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            pod_meta["name"] = f"{meta['name']}-{suffix}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": pod_meta,
                "spec": template.get("spec") or {},
            }
            try:
                created = self.store.create(PODS, pod, namespace=meta["namespace"])
            except AlreadyExists:
                continue
            except StoreError as exc:
                self.events.warning(rs, "FailedCreate", f"Error creating: {exc}")
                return
            self.events.normal(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
            return

    def _delete_pod(self, rs: dict[str, Any], pod: dict[str, Any]) -> None:
        try:
            self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        except NotFound:
            return
        self.events.normal(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    @staticmethod
    def _deletion_order(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        def rank(pod: dict[str, Any]) -> tuple[int, int, int, float, str]:
            status = pod.get("status") or {}
            scheduled = 1 if pod.get("spec", {}).get("nodeName") else 0
            running = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
            ready = 1 if is_ready(pod) else 0
            since = ready_since(pod) or 0.0
            return (scheduled, running, ready, -since, pod["metadata"].get("creationTimestamp", ""))

        ordered = sorted(pods, key=rank)
        return ordered

    def _write_status(self, rs: dict[str, Any], owned: list[dict[str, Any]] | None) -> float | None:
        """``owned`` is the pod list when this reconcile changed nothing (saves a second list)."""
        latest = self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        if owned is None:
            owned = controlled_by(latest, self.store.list(PODS, latest["metadata"]["namespace"])[0])
        pods = [pod for pod in owned if is_active(pod)]
        spec = latest.get("spec", {})
        min_ready = int(spec.get("minReadySeconds", 0) or 0)
        now = time.time()
        template_labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1
                for pod in pods
                if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for pod in pods if is_ready(pod)),
            "availableReplicas": sum(1 for pod in pods if is_available(pod, min_ready, now)),
            "observedGeneration": latest["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        previous = latest.get("status") or {}
        if {k: v for k, v in previous.items() if k != "conditions"} != status:
            latest["status"] = {
                **status,
                **({"conditions": previous["conditions"]} if "conditions" in previous else {}),
            }
            self.store.update(REPLICASETS, latest, subresource="status")
        waiting = [pod for pod in pods if is_ready(pod) and not is_available(pod, min_ready, now)]
        if waiting:
            return max(0.1, min(min_ready - (now - (ready_since(p) or now)) for p in waiting))
        return None
