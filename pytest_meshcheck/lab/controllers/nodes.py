"""The lab's Node objects, registered at start and kept Ready, as a kubelet registers its node."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.lab.errors import AlreadyExists, NotFound
from pytest_meshcheck.lab.runtime.timefmt import rfc3339
from pytest_meshcheck.lab.store import GVR, Store

NODES = GVR.core("nodes")
KUBELET_VERSION = "v1.32.0"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str
    cpu: str = "4"
    memory: str = "16Gi"
    pods: str = "110"


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine or "amd64")


def node_object(spec: NodeSpec, *, control_plane: bool) -> dict[str, Any]:
    now = rfc3339()
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": _arch(),
    }
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods, "ephemeral-storage": "100Gi"}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"{spec.ip}/32", "podCIDRs": [f"{spec.ip}/32"]},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": spec.ip},
                {"type": "Hostname", "address": spec.name},
            ],
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
                ),
                condition(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": _arch(),
                "bootID": "",
                "containerRuntimeVersion": "containerd://meshcheck-lab",
                "kernelVersion": platform.release(),
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "meshcheck lab",
                "systemUUID": "",
            },
        },
    }


def register_node(store: Store, spec: NodeSpec, *, control_plane: bool) -> dict[str, Any]:
    """Create the Node (or refresh its status when it survived from an earlier run)."""
    wanted = node_object(spec, control_plane=control_plane)
    try:
        created = store.create(NODES, wanted)
    except AlreadyExists:
        created = store.get(NODES, None, spec.name)
    created["status"] = wanted["status"]
    try:
        return store.update(NODES, created, subresource="status")
    except NotFound:
        return created
