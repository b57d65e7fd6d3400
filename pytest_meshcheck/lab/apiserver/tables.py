"""Server-side printing: the ``meta.k8s.io/v1 Table`` kubectl asks for in ``kubectl get``.

Columns follow the real server's printers for the kinds people look at (pods, deployments,
services ...); every other kind gets NAME and AGE, plus a CRD's additionalPrinterColumns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pytest_meshcheck.lab.resources import ResourceKind

Obj = Mapping[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """kubectl's ``HumanDuration``: 5s, 95s, 3m2s, 10m, 2h5m, 3d4h, 400d, 2y."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = s // 86400
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _since(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _age(obj: Obj) -> str:
    return _since(_meta(obj).get("creationTimestamp"))


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in status.get("initContainerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            reason = f"ExitCode:{terminated.get('exitCode', 0)}"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_ready(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{total}"


def _pod_restarts(pod: Obj) -> int:
    return sum(
        int(s.get("restartCount", 0)) for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _ports(service: Obj) -> str:
    parts = []
    for port in (service.get("spec") or {}).get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _external_ip(service: Obj) -> str:
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress] + list(spec.get("externalIPs") or [])
    if ips:
        return ",".join(str(i) for i in ips)
    return "<pending>" if kind == "LoadBalancer" else "<none>"


def _endpoints(endpoints: Obj) -> str:
    pairs = []
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                pairs.append(f"{address.get('ip')}:{port.get('port')}" if port else str(address.get("ip")))
    if not pairs:
        return "<none>"
    return ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")


def _status(obj: Obj, field: str, default: Any = 0) -> Any:
    return (obj.get("status") or {}).get(field, default)


def _spec(obj: Obj, field: str, default: Any = 0) -> Any:
    return (obj.get("spec") or {}).get(field, default)


def _node_status(node: Obj) -> str:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    return state


def _node_roles(node: Obj) -> str:
    roles = [
        k.split("/", 1)[1]
        for k in (_meta(node).get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    ]
    return ",".join(sorted(roles)) or "<none>"


def _containers(obj: Obj) -> list[Mapping[str, Any]]:
    template = (obj.get("spec") or {}).get("template") or {}
    return list((template.get("spec") or {}).get("containers") or [])


def _selector(obj: Obj) -> str:
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = selector.get("matchLabels", selector) if isinstance(selector, Mapping) else {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)) or "<none>"


def _job_status(job: Obj) -> str:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return "Running"


def _event_object(event: Obj) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


_NAME: Column = ("Name", "string", 0, _name)
_AGE: Column = ("Age", "string", 0, _age)

_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, lambda p: str(_pod_restarts(p))),
        _AGE,
        ("IP", "string", 1, lambda p: _status(p, "podIP", "<none>") or "<none>"),
        ("Node", "string", 1, lambda p: _spec(p, "nodeName", "<none>") or "<none>"),
        ("Nominated Node", "string", 1, lambda p: "<none>"),
        ("Readiness Gates", "string", 1, lambda p: "<none>"),
    ],
    ("apps", "deployments"): [
        _NAME,
        ("Ready", "string", 0, lambda d: f"{_status(d, 'readyReplicas')}/{_spec(d, 'replicas', 1)}"),
        ("Up-to-date", "integer", 0, lambda d: _status(d, "updatedReplicas")),
        ("Available", "integer", 0, lambda d: _status(d, "availableReplicas")),
        _AGE,
        ("Containers", "string", 1, lambda d: ",".join(str(c.get("name")) for c in _containers(d))),
        ("Images", "string", 1, lambda d: ",".join(str(c.get("image")) for c in _containers(d))),
        ("Selector", "string", 1, _selector),
    ],
    ("apps", "replicasets"): [
        _NAME,
        ("Desired", "integer", 0, lambda r: _spec(r, "replicas", 1)),
        ("Current", "integer", 0, lambda r: _status(r, "replicas")),
        ("Ready", "integer", 0, lambda r: _status(r, "readyReplicas")),
        _AGE,
    ],
    ("apps", "statefulsets"): [
        _NAME,
        ("Ready", "string", 0, lambda s: f"{_status(s, 'readyReplicas')}/{_spec(s, 'replicas', 1)}"),
        _AGE,
    ],
    ("apps", "daemonsets"): [
        _NAME,
        ("Desired", "integer", 0, lambda d: _status(d, "desiredNumberScheduled")),
        ("Current", "integer", 0, lambda d: _status(d, "currentNumberScheduled")),
        ("Ready", "integer", 0, lambda d: _status(d, "numberReady")),
        ("Up-to-date", "integer", 0, lambda d: _status(d, "updatedNumberScheduled")),
        ("Available", "integer", 0, lambda d: _status(d, "numberAvailable")),
        _AGE,
    ],
    ("batch", "jobs"): [
        _NAME,
        ("Status", "string", 0, _job_status),
        ("Completions", "string", 0, lambda j: f"{_status(j, 'succeeded')}/{_spec(j, 'completions', 1)}"),
        _AGE,
    ],
    ("", "services"): [
        _NAME,
        ("Type", "string", 0, lambda s: _spec(s, "type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda s: _spec(s, "clusterIP", "<none>") or "<none>"),
        ("External-IP", "string", 0, _external_ip),
        ("Port(s)", "string", 0, _ports),
        _AGE,
        ("Selector", "string", 1, _selector),
    ],
    ("", "namespaces"): [_NAME, ("Status", "string", 0, lambda n: _status(n, "phase", "Active")), _AGE],
    ("", "nodes"): [
        _NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        _AGE,
        (
            "Version",
            "string",
            0,
            lambda n: ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ),
    ],
    ("", "configmaps"): [
        _NAME,
        ("Data", "integer", 0, lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {})),
        _AGE,
    ],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", 0, lambda s: s.get("type", "Opaque")),
        ("Data", "integer", 0, lambda s: len(s.get("data") or {})),
        _AGE,
    ],
    ("", "serviceaccounts"): [_NAME, ("Secrets", "integer", 0, lambda s: len(s.get("secrets") or [])), _AGE],
    ("", "endpoints"): [_NAME, ("Endpoints", "string", 0, _endpoints), _AGE],
    ("", "events"): [
        (
            "Last Seen",
            "string",
            0,
            lambda e: _since(
                e.get("lastTimestamp") or e.get("eventTime") or _meta(e).get("creationTimestamp")
            ),
        ),
        ("Type", "string", 0, lambda e: e.get("type", "")),
        ("Reason", "string", 0, lambda e: e.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda e: e.get("message") or e.get("note") or ""),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _NAME,
        ("Created At", "date", 0, lambda c: _meta(c).get("creationTimestamp", "")),
    ],
}


def _json_path_value(obj: Obj, path: str) -> Any:
    current: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
    return current


class _PrinterColumn:
    """A CRD's additionalPrinterColumn cell: a simple ``.a.b.c`` JSONPath."""

    def __init__(self, path: str, col_type: str) -> None:
        self.path = path
        self.col_type = col_type

    def __call__(self, obj: Obj) -> Any:
        return _cell(_json_path_value(obj, self.path), self.col_type)


def columns_for(kind: ResourceKind) -> list[Column]:
    columns = _COLUMNS.get(kind.storage_key)
    if columns is not None:
        return columns
    extra: list[Column] = [
        (name.title() if name.islower() else name, col_type, 0, _PrinterColumn(path, col_type))
        for name, col_type, path in kind.printer_columns
    ]
    has_age = any(c[0].lower() == "age" for c in extra)
    return [_NAME, *extra] if has_age else [_NAME, _AGE, *extra]


def _cell(value: Any, col_type: str) -> Any:
    if value is None:
        return "<none>" if col_type == "string" else None
    if col_type == "date" and isinstance(value, str):
        return _since(value)
    if isinstance(value, (dict, list)):
        return str(value)
    return value


def _row_object(obj: Obj, include: str) -> Any:
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": dict(_meta(obj))}


def table(
    kind: ResourceKind,
    objects: list[Obj],
    *,
    resource_version: str,
    include_object: str,
    with_headers: bool = True,
) -> dict[str, Any]:
    columns = columns_for(kind)
    definitions = [
        {
            "name": name,
            "type": col_type,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": priority,
        }
        for name, col_type, priority, _cell_fn in columns
    ]
    rows = []
    for obj in objects:
        cells = []
        for column in columns:
            cell = column[3]
            try:
                cells.append(cell(obj))
            except (TypeError, ValueError, AttributeError, KeyError):
                cells.append("<unknown>")
        rows.append({"cells": cells, "object": _row_object(obj, include_object)})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions if with_headers else [],
        "rows": rows,
    }
