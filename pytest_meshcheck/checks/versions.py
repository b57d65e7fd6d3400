"""Control-plane and proxy versions, Istio's supported skew, and proxy connectivity.

Istio supports a data plane at most one minor version behind its control plane and never ahead
of it. Which proxies are connected to which istiod comes from istiod's ``/debug/syncz`` (what
``istioctl proxy-status`` reads), fetched through the API server's service proxy.
"""

from __future__ import annotations

import json
import re
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
