"""Defaulting: the fields a real API server fills in on every write (on decode), which clients
read back and rely on: kubectl rollout reads a Deployment's strategy, the Python client's models
expect a pod's restartPolicy, and a namespace is Active with its name label."""

from __future__ import annotations

import base64
from typing import Any

from pytest_meshcheck.lab.resources import ResourceKind

Obj = dict[str, Any]

_TEMPLATED = {
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("", "replicationcontrollers"),
}


def _default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(container, dict):
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def apply_defaults(kind: ResourceKind, obj: Obj) -> None:
    """The defaults clients read back and rely on (kubectl rollout, the Python client's models)."""
    key = kind.storage_key
    if key in _TEMPLATED:
        _default_pod_spec(((obj.get("spec") or {}).get("template") or {}).get("spec"))
    elif key == ("", "pods"):
        _default_pod_spec(obj.get("spec"))
    if key == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif key == ("", "pods"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if isinstance(container, dict):
                image = str(container.get("image", ""))
                latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
                container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif key in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if key == ("apps", "deployments"):
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
    elif key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    _normalize(kind, obj)


def _normalize(kind: ResourceKind, obj: Obj) -> None:
    """Write-time conversions the real server makes on every write (Secret ``stringData``)."""
    if kind.storage_key == ("", "secrets"):
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
