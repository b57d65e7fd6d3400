"""One container slot of a pod, across restarts: its workload, logs, probes and reported status.

The pod worker owns these objects and mutates them from its own thread only; ``exec`` and
``logs`` requests read ``current`` under the slot's lock.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.lab.contract import Workload, WorkloadContext
from pytest_meshcheck.lab.runtime.logs import LogBuffer
from pytest_meshcheck.lab.runtime.probes import ProbeTracker
from pytest_meshcheck.lab.runtime.timefmt import rfc3339


@dataclass
class Instance:
    """One run of a container (a restart makes a new one)."""

    workload: Workload
    context: WorkloadContext
    logs: LogBuffer
    container_id: str
    started_epoch: float
    started_mono: float
    #: Set by the run thread of a run-to-completion workload.
    exit_code: int | None = None
    exited: threading.Event = field(default_factory=threading.Event)
    #: False for one-shot init containers whose workload was never started (nothing to stop).
    started_workload: bool = True


class ContainerSlot:
    """Spec and lifecycle state of one container in one pod."""

    def __init__(self, spec: Mapping[str, Any], *, kind: str) -> None:
        self.spec = spec
        self.name = str(spec.get("name", ""))
        self.image = str(spec.get("image", ""))
        #: "init" (runs to completion), "sidecar" (native sidecar: an init container that stays
        #: running), or "app".
        self.kind = kind
        self.lock = threading.Lock()
        self.current: Instance | None = None
        self.previous_logs: LogBuffer | None = None
        self.restart_count = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self.started = False
        self.completed = False
        self.image_id = ""
        self.image_full = ""
        self.backoff_until = 0.0
        self.crash_delay = 0.0
        self.pull_delay = 0.0
        #: The waiting reason to show once the current back-off begins (ImagePullBackOff ...).
        self.pending_backoff_reason = ""
        self.pending_at = 0.0
        self.readiness: ProbeTracker | None = None
        self.liveness: ProbeTracker | None = None
        self.startup: ProbeTracker | None = None

    @property
    def running(self) -> bool:
        return self.current is not None

    def container_ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        for port in self.spec.get("ports") or []:
            if port.get("name"):
                ports[str(port["name"])] = int(port["containerPort"])
        return ports

    def waiting(self, reason: str, message: str = "") -> None:
        body: dict[str, Any] = {"reason": reason}
        if message:
            body["message"] = message
        self.state = {"waiting": body}

    def terminated(self, *, exit_code: int, reason: str, started: float, message: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": rfc3339(started),
            "finishedAt": rfc3339(),
            "containerID": self.current.container_id if self.current else "",
        }
        if message:
            body["message"] = message
        return {"terminated": body}

    def status(self) -> dict[str, Any]:
        """This container's entry in ``status.containerStatuses`` (or the init list)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "image": self.image_full or self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.current is not None:
            entry["containerID"] = self.current.container_id
        elif "terminated" in self.state and self.state["terminated"].get("containerID"):
            entry["containerID"] = self.state["terminated"]["containerID"]
        return entry


def new_container_id() -> str:
    return f"containerd://{secrets.token_hex(32)}"
