"""The Deployment controller: rollouts through ReplicaSets, as kube-controller-manager does them.

The ReplicaSet for a template is named ``<deployment>-<pod-template-hash>`` (an FNV-1a hash of the
template, encoded in the same consonant-and-digit alphabet), so re-applying an unchanged template
finds the same ReplicaSet and ``kubectl rollout restart`` (a new ``restartedAt`` annotation on the
template) makes a new one. RollingUpdate scales the new ReplicaSet up within ``maxSurge`` and the
old ones down within ``maxUnavailable``; Recreate scales the old ones to zero first. Status and
the ``Available``/``Progressing`` conditions carry the reasons ``kubectl rollout status`` reads.
"""

from __future__ import annotations

import copy
import json
import math
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
from pytest_meshcheck.lab.controllers.replicaset import REPLICASETS
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound
from pytest_meshcheck.lab.runtime.timefmt import parse_rfc3339, rfc3339
from pytest_meshcheck.lab.store import GVR, Store

DEPLOYMENTS = GVR.parse("apps/v1/deployments")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

RS = dict[str, Any]


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """FNV-32a over the template's canonical JSON, in the safe alphabet (no vowels, no 0/1/3)."""
    stripped = copy.deepcopy(template)
    labels = (stripped.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    data = json.dumps(stripped, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    digits = []
    for char in str(value):
        digits.append(_ALPHABET[ord(char) % len(_ALPHABET)])
    text = "".join(digits)
    return text[:10]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(template)
    labels = (copied.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return copied


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    if value is None:
        return 0
    text = str(value)
    if text.endswith("%"):
        fraction = float(text[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    spec = deployment.get("spec", {})
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _revision(rs: RS) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _replicas(rs: RS) -> int:
    return int(rs.get("spec", {}).get("replicas", 0) or 0)


def _available(rs: RS) -> int:
    return int((rs.get("status") or {}).get("availableReplicas", 0) or 0)


class DeploymentController(Controller):
    name = "deployment-controller"
    primary = DEPLOYMENTS

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "deployment-controller")

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(DEPLOYMENTS, own_key), (REPLICASETS, owner_keys("Deployment"))]

    # -- reconcile -------------------------------------------------------------------------
    def reconcile(self, key: Key) -> float | None:
        deployment = self.live(key)
        if deployment is None:
            return None
        all_rs = self._owned(deployment)
        new_rs, old = self._split(deployment, all_rs)
        paused = bool(deployment.get("spec", {}).get("paused"))
        created = False
        if new_rs is None and not paused:
            new_rs = self._create_new(deployment, old)
            created = True
        elif new_rs is not None:
            new_rs = self._sync_revision(deployment, new_rs, old)
        if new_rs is not None:
            self._annotate_revision(deployment, new_rs)
        if not paused and new_rs is not None:
            strategy = (deployment.get("spec", {}).get("strategy") or {}).get("type", "RollingUpdate")
            if strategy == "Recreate":
                self._recreate(deployment, new_rs, old)
            else:
                self._rolling(deployment, new_rs, old)
            self._cleanup(deployment, old)
        elif paused:
            self._scale_proportionally(deployment, new_rs, old)
        return self._write_status(deployment, new_rs, created)

    def _annotate_revision(self, deployment: dict[str, Any], new_rs: RS) -> None:
        """The Deployment carries its current revision, as ``kubectl rollout history`` reads it."""
        revision = str(_revision(new_rs))
        annotations = deployment["metadata"].get("annotations") or {}
        if annotations.get(REVISION) == revision:
            return
        meta = deployment["metadata"]
        fresh = self.store.get(DEPLOYMENTS, meta["namespace"], meta["name"])
        fresh["metadata"].setdefault("annotations", {})[REVISION] = revision
        self.store.update(DEPLOYMENTS, fresh)

    def _owned(self, deployment: dict[str, Any]) -> list[RS]:
        """Its live ReplicaSets: one being deleted no longer counts toward its replicas."""
        items, _ = self.store.list(REPLICASETS, deployment["metadata"]["namespace"])
        return [rs for rs in controlled_by(deployment, items) if not rs["metadata"].get("deletionTimestamp")]

    @staticmethod
    def _split(deployment: dict[str, Any], all_rs: list[RS]) -> tuple[RS | None, list[RS]]:
        wanted = _without_hash(deployment.get("spec", {}).get("template") or {})
        matches = [rs for rs in all_rs if _without_hash(rs.get("spec", {}).get("template") or {}) == wanted]
        matches.sort(key=lambda rs: rs["metadata"].get("creationTimestamp", ""))
        new_rs = matches[0] if matches else None
        old = [rs for rs in all_rs if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        return new_rs, old

    def _create_new(self, deployment: dict[str, Any], old: list[RS]) -> RS:
        meta = deployment["metadata"]
        spec = deployment.get("spec", {})
        collisions = int((deployment.get("status") or {}).get("collisionCount", 0) or 0)
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        revision = max([_revision(rs) for rs in old], default=0) + 1
        surge, _ = surge_and_unavailable(deployment)
        replicas = int(spec.get("replicas", 1))
        rs: RS = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta["namespace"],
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": {
                    REVISION: str(revision),
                    DESIRED: str(replicas),
                    MAX_REPLICAS: str(replicas + surge),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds", 0) or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.store.create(REPLICASETS, rs, namespace=meta["namespace"])
        except AlreadyExists:
            # A hash collision with a ReplicaSet of a different template: bump collisionCount.
            deployment.setdefault("status", {})["collisionCount"] = collisions + 1
            self.store.update(DEPLOYMENTS, deployment, subresource="status")
            raise
        return created

    def _sync_revision(self, deployment: dict[str, Any], new_rs: RS, old: list[RS]) -> RS:
        """A rollback to an old template makes its ReplicaSet the newest revision again."""
        annotations = new_rs["metadata"].setdefault("annotations", {})
        top = max([_revision(rs) for rs in old], default=0)
        replicas = int(deployment.get("spec", {}).get("replicas", 1))
        surge, _ = surge_and_unavailable(deployment)
        changed = False
        if _revision(new_rs) <= top:
            annotations[REVISION] = str(top + 1)
            changed = True
        for name, value in ((DESIRED, str(replicas)), (MAX_REPLICAS, str(replicas + surge))):
            if annotations.get(name) != value:
                annotations[name] = value
                changed = True
        min_ready = int(deployment.get("spec", {}).get("minReadySeconds", 0) or 0)
        if int(new_rs.get("spec", {}).get("minReadySeconds", 0) or 0) != min_ready:
            new_rs["spec"]["minReadySeconds"] = min_ready
            changed = True
        return self.store.update(REPLICASETS, new_rs) if changed else new_rs

    # -- strategies ------------------------------------------------------------------------
    def _scale(self, deployment: dict[str, Any], rs: RS, replicas: int) -> RS:
        current = _replicas(rs)
        if current == replicas:
            return rs
        rs["spec"]["replicas"] = replicas
        updated = self.store.update(REPLICASETS, rs)
        direction = "up" if replicas > current else "down"
        self.events.normal(
            deployment,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {current} to {replicas}",
        )
        return updated

    def _recreate(self, deployment: dict[str, Any], new_rs: RS, old: list[RS]) -> None:
        for rs in old:
            self._scale(deployment, rs, 0)
        still_running = sum(int((rs.get("status") or {}).get("replicas", 0) or 0) for rs in old)
        if still_running == 0:
            self._scale(deployment, new_rs, int(deployment.get("spec", {}).get("replicas", 1)))

    def _rolling(self, deployment: dict[str, Any], new_rs: RS, old: list[RS]) -> None:
        replicas = int(deployment.get("spec", {}).get("replicas", 1))
        surge, unavailable = surge_and_unavailable(deployment)
        active_old = [rs for rs in old if _replicas(rs) > 0]
        if not active_old:
            self._scale(deployment, new_rs, replicas)
            return
        # Scale up the new ReplicaSet within maxSurge.
        total = _replicas(new_rs) + sum(_replicas(rs) for rs in old)
        allowed = replicas + surge
        if _replicas(new_rs) < replicas and total < allowed:
            step = min(allowed - total, replicas - _replicas(new_rs))
            new_rs = self._scale(deployment, new_rs, _replicas(new_rs) + step)
        elif _replicas(new_rs) > replicas:
            new_rs = self._scale(deployment, new_rs, replicas)
        # Scale down old ones within maxUnavailable.
        min_available = replicas - unavailable
        new_unavailable = _replicas(new_rs) - _available(new_rs)
        all_pods = _replicas(new_rs) + sum(_replicas(rs) for rs in old)
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        oldest_first = sorted(active_old, key=lambda rs: rs["metadata"].get("creationTimestamp", ""))
        # First the old replicas that are not available anyway (they cost no availability).
        for rs in oldest_first:
            if budget <= 0:
                return
            unhealthy = _replicas(rs) - _available(rs)
            if unhealthy <= 0:
                continue
            cut = min(unhealthy, budget)
            self._scale(deployment, rs, _replicas(rs) - cut)
            budget -= cut
        available_total = _available(new_rs) + sum(_available(rs) for rs in old)
        budget = min(budget, available_total - min_available)
        for rs in oldest_first:
            if budget <= 0:
                return
            fresh = self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            cut = min(_replicas(fresh), budget)
            if cut > 0:
                self._scale(deployment, fresh, _replicas(fresh) - cut)
                budget -= cut

    def _scale_proportionally(self, deployment: dict[str, Any], new_rs: RS | None, old: list[RS]) -> None:
        """A paused deployment still follows ``spec.replicas`` on its newest ReplicaSet."""
        if new_rs is not None and not any(_replicas(rs) for rs in old):
            self._scale(deployment, new_rs, int(deployment.get("spec", {}).get("replicas", 1)))

    def _cleanup(self, deployment: dict[str, Any], old: list[RS]) -> None:
        limit = int(deployment.get("spec", {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in old if _replicas(rs) == 0 and not (rs.get("status") or {}).get("replicas")]
        idle.sort(key=_revision)
        for rs in idle[: max(len(idle) - limit, 0)]:
            try:
                self.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except NotFound:
                continue

    # -- status ----------------------------------------------------------------------------
    def _write_status(self, deployment: dict[str, Any], new_rs: RS | None, created: bool) -> float | None:
        meta = deployment["metadata"]
        latest = self.store.get(DEPLOYMENTS, meta["namespace"], meta["name"])
        all_rs = self._owned(latest)
        new_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        fresh_new = next((rs for rs in all_rs if rs["metadata"]["name"] == new_name), None)
        spec = latest.get("spec", {})
        replicas_wanted = int(spec.get("replicas", 1))
        _, unavailable_budget = surge_and_unavailable(latest)

        def total(field: str, items: Iterable[RS]) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0) or 0) for rs in items)

        replicas = total("replicas", all_rs)
        updated = total("replicas", [fresh_new] if fresh_new else [])
        ready = total("readyReplicas", all_rs)
        available = total("availableReplicas", all_rs)
        previous = latest.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": latest["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(replicas_wanted - available, 0),
        }
        if previous.get("collisionCount"):
            status["collisionCount"] = previous["collisionCount"]
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        conditions = {c.get("type"): c for c in previous.get("conditions") or []}
        min_available = replicas_wanted - unavailable_budget
        if available >= min_available:
            self._set(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            self._set(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        requeue: float | None = None
        if fresh_new is not None:
            complete = (
                updated == replicas_wanted
                and replicas == replicas_wanted
                and available == replicas_wanted
                and _available(fresh_new) == replicas_wanted
            )
            name = fresh_new["metadata"]["name"]
            progressing = conditions.get("Progressing")
            if complete:
                self._set(
                    conditions,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                )
            elif created:
                self._set(
                    conditions,
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{name}"',
                    force_update=True,
                )
            else:
                deadline = int(spec.get("progressDeadlineSeconds", 600) or 600)
                last = progressing.get("lastUpdateTime") if progressing else None
                stuck_since = parse_rfc3339(last) if last else time.time()
                if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
                    pass
                elif (
                    time.time() - stuck_since > deadline
                    and progressing
                    and progressing.get("reason") != "NewReplicaSetAvailable"
                ):
                    self._set(
                        conditions,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        f'ReplicaSet "{name}" has timed out progressing.',
                    )
                else:
                    moved = (
                        previous.get("updatedReplicas") != status.get("updatedReplicas")
                        or previous.get("availableReplicas") != status.get("availableReplicas")
                        or previous.get("readyReplicas") != status.get("readyReplicas")
                        or progressing is None
                        or progressing.get("reason") == "NewReplicaSetAvailable"
                    )
                    if moved or (progressing or {}).get("reason") not in (
                        "ReplicaSetUpdated",
                        "NewReplicaSetCreated",
                    ):
                        self._set(
                            conditions,
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            f'ReplicaSet "{name}" is progressing.',
                            force_update=moved,
                        )
                    requeue = min(float(deadline), 5.0)
        ordered = [conditions[k] for k in ("Available", "Progressing") if k in conditions]
        ordered += [c for k, c in conditions.items() if k not in ("Available", "Progressing")]
        status["conditions"] = ordered
        if status != previous:
            latest["status"] = status
            self.store.update(DEPLOYMENTS, latest, subresource="status")
        return requeue

    @staticmethod
    def _set(
        conditions: dict[str, dict[str, Any]],
        kind: str,
        status: str,
        reason: str,
        message: str,
        *,
        force_update: bool = False,
    ) -> None:
        now = rfc3339()
        before = conditions.get(kind)
        if (
            before
            and before.get("status") == status
            and before.get("reason") == reason
            and before.get("message") == message
            and not force_update
        ):
            return
        transition = before.get("lastTransitionTime") if before and before.get("status") == status else now
        conditions[kind] = {
            "type": kind,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }
