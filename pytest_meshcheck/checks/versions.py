"""Control-plane and proxy versions, Istio's supported skew, and proxy connectivity.

Istio supports a data plane at most one minor version behind its control plane and never ahead
of it. Which proxies are connected to which istiod comes from istiod's ``/debug/syncz`` (what
``istioctl proxy-status`` reads), fetched through the API server's service proxy.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.proxy import service_request

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def version_tuple(version: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(version.strip().removeprefix("v"))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def skew_findings(control_plane: str, proxies: Mapping[str, str], *, max_minor_behind: int = 1) -> list[str]:
    """Proxies outside the supported skew of ``control_plane`` (one line each)."""
    control = version_tuple(control_plane)
    if control is None:
        return [f"control plane version {control_plane!r} is not a release version"]
    findings = []
    for pod, version in sorted(proxies.items()):
        proxy = version_tuple(version)
        if proxy is None:
            findings.append(f"{pod}: proxy version {version!r} is not a release version")
        elif proxy[:2] > control[:2] or (
            proxy[0] == control[0] and proxy[1] == control[1] and proxy > control
        ):
            findings.append(f"{pod}: proxy {version} is newer than the control plane {control_plane}")
        elif proxy[0] != control[0] or control[1] - proxy[1] > max_minor_behind:
            findings.append(
                f"{pod}: proxy {version} is {control[1] - proxy[1]} minor versions behind the control plane "
                f"{control_plane} (at most {max_minor_behind} is supported)"
            )
    return findings


def syncz(kube: Kube, istiod_service: str, *, namespace: str = "istio-system") -> list[dict[str, Any]]:
    """istiod's ``/debug/syncz``: one row per connected proxy."""
    response = service_request(kube, namespace, istiod_service, 15014, "/debug/syncz")
    if response.status != 200:
        raise EnvironmentProblem(
            f"{istiod_service}.{namespace}:15014/debug/syncz answered {response.status}",
            evidence={"response": response.text()[:4000]},
        )
    rows = json.loads(response.body)
    if not isinstance(rows, list):
        raise EnvironmentProblem(f"/debug/syncz of {istiod_service} did not return a list")
    return [row for row in rows if isinstance(row, dict)]


def proxy_id(pod: Any) -> str:
    """How istiod names a pod's proxy: ``<pod>.<namespace>``."""
    return f"{pod.metadata.name}.{pod.metadata.namespace}"


def meshed_pods(kube: Kube) -> list[Any]:
    """Every live pod (not being deleted) that runs an istio-proxy, gateways included."""
    from pytest_meshcheck.checks.injection import inspect_pod

    pods = kube.core.list_pod_for_all_namespaces().items
    return [p for p in pods if p.metadata.deletion_timestamp is None and inspect_pod(p).has_proxy]


def await_connected_proxies(
    kube: Kube, istiod_service: str, expected: set[str], *, timeout: float, interval: float = 2.0
) -> tuple[set[str], list[dict[str, Any]]]:
    """Poll istiod's syncz until every proxy in ``expected`` (``proxy_id`` form) is connected or
    ``timeout`` passes (a restarted proxy takes a moment to connect); returns the ones still
    missing and the last syncz rows, for the check to judge and attach."""
    deadline = time.monotonic() + timeout
    while True:
        rows = syncz(kube, istiod_service)
        missing = expected - {str(row.get("proxy", "")) for row in rows}
        if not missing or time.monotonic() >= deadline:
            return missing, rows
        time.sleep(interval)
