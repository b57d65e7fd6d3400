"""A container's environment, built as the kubelet builds it: ``env`` (literal values, ``$(VAR)``
expansion, the downward API, ConfigMap and Secret keys), ``envFrom``, and ``HOSTNAME``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.errors import StoreError
from pytest_meshcheck.lab.store import GVR, Store

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _expand(value: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


def _field(pod: Mapping[str, Any], path: str, pod_ip: str, node_name: str, node_ip: str) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": node_ip,
        "status.hostIPs": node_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    return ""


def _data(store: Store, kind: str, namespace: str, name: str) -> dict[str, str]:
    try:
        obj = store.get(GVR.core(kind), namespace, name)
    except StoreError:
        return {}
    if kind == "secrets":
        decoded = {
            k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()
        }
        decoded.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return decoded
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    store: Store,
    pod_ip: str,
    node_name: str,
    node_ip: str,
) -> dict[str, str]:
    namespace = str(pod.get("metadata", {}).get("namespace", "default"))
    spec = pod.get("spec", {})
    env: dict[str, str] = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": str(spec.get("hostname") or pod.get("metadata", {}).get("name", "")),
    }
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            data = _data(store, "configmaps", namespace, str(source["configMapRef"].get("name", "")))
        elif "secretRef" in source:
            data = _data(store, "secrets", namespace, str(source["secretRef"].get("name", "")))
        else:
            continue
        env.update({prefix + key: value for key, value in data.items()})
    for item in container.get("env") or []:
        name = str(item.get("name", ""))
        if "value" in item:
            env[name] = _expand(str(item.get("value") or ""), env)
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = _field(pod, str(source["fieldRef"].get("fieldPath", "")), pod_ip, node_name, node_ip)
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[name] = _data(store, "configmaps", namespace, str(ref.get("name", ""))).get(
                str(ref.get("key")), ""
            )
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = _data(store, "secrets", namespace, str(ref.get("name", ""))).get(
                str(ref.get("key")), ""
            )
        elif "resourceFieldRef" in source:
            env[name] = "0"
        else:
            env[name] = ""
    return env
