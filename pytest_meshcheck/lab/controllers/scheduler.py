"""The default scheduler, reduced to what a loopback cluster needs: bind each pending pod to the
Ready node that matches its nodeSelector and runs the fewest pods, and say so in a ``Scheduled``
event ("Successfully assigned ns/pod to node") and the ``PodScheduled`` condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_meshcheck.lab.controllers.base import Controller, Key, KeyMapper
from pytest_meshcheck.lab.controllers.events import EventRecorder
from pytest_meshcheck.lab.controllers.nodes import NODES
from pytest_meshcheck.lab.runtime.timefmt import rfc3339
from pytest_meshcheck.lab.store import GVR, Store

PODS = GVR.core("pods")


def _unscheduled(_event: str, obj: dict[str, Any]) -> Iterable[Key]:
    meta = obj.get("metadata", {})
    spec = obj.get("spec", {})
    if (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
    ):
        yield (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _node_ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


class Scheduler(Controller):
    name = "default-scheduler"
    primary = PODS
    resync_seconds = 10.0

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "default-scheduler")

    def watches(self) -> list[tuple[GVR, KeyMapper]]:
        return [(PODS, _unscheduled)]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        pod = self.live(key)
        if pod is None or pod.get("spec", {}).get("nodeName"):
            return None
        nodes, _ = self.store.list(NODES)
        selector = pod.get("spec", {}).get("nodeSelector") or {}
        fits = [
            node
            for node in nodes
            if _node_ready(node)
            and not node.get("spec", {}).get("unschedulable")
            and all((node["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ]
        if not fits:
            message = (
                f"0/{len(nodes)} nodes are available: "
                f"{len(nodes)} node(s) didn't match Pod's node affinity/selector."
            )
            self._condition(pod, "False", "Unschedulable", message)
            self.events.warning(pod, "FailedScheduling", message)
            return 5.0
        pods, _ = self.store.list(PODS)
        load = {node["metadata"]["name"]: 0 for node in fits}
        for other in pods:
            host = other.get("spec", {}).get("nodeName")
            if host in load:
                load[host] += 1
        chosen = min(fits, key=lambda node: (load[node["metadata"]["name"]], node["metadata"]["name"]))
        node_name = chosen["metadata"]["name"]
        # The condition goes first: the kubelet only sees the pod once it is bound, and must
        # find PodScheduled already there to carry it along in its own status writes.
        fresh = self._condition(pod, "True", "", "")
        fresh["spec"]["nodeName"] = node_name
        bound = self.store.update(PODS, fresh)
        self.events.normal(bound, "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}")
        return None

    def _condition(self, pod: dict[str, Any], status: str, reason: str, message: str) -> dict[str, Any]:
        fresh = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        current = fresh.setdefault("status", {})
        conditions = [c for c in current.get("conditions") or [] if c.get("type") != "PodScheduled"]
        entry: dict[str, Any] = {
            "type": "PodScheduled",
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(),
        }
        if reason:
            entry["reason"] = reason
            entry["message"] = message
        conditions.append(entry)
        current["conditions"] = conditions
        current.setdefault("phase", "Pending")
        return self.store.update(PODS, fresh, subresource="status")
