"""Sidecar injection, judged from pod specs as Istio writes them.

An injected pod carries ``istio-proxy`` (as a container, or as a native sidecar: an init container
with ``restartPolicy: Always``), its init (``istio-init``, or ``istio-validation`` with istio-cni),
and a ``sidecar.istio.io/status`` annotation naming the injecting revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PROXY = "istio-proxy"
INITS = ("istio-init", "istio-validation")
STATUS_ANNOTATION = "sidecar.istio.io/status"
#: The image of the throw-away pods that show what the injector does to a pod created now.
PROBE_IMAGE = "docker.io/curlimages/curl:8.16.0"


@dataclass(frozen=True, kw_only=True)
class PodInjection:
    """What a pod's spec says about its sidecar."""

    name: str
    namespace: str
    has_proxy: bool
    native_sidecar: bool
    init: str
    status_revision: str | None
    proxy_image: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def injected(self) -> bool:
        return self.has_proxy and not self.problems


def inspect_pod(pod: Any) -> PodInjection:
    """Read a pod (kubernetes client model) the way ``istioctl x describe`` would."""
    containers = list(pod.spec.containers or [])
    init_containers = list(pod.spec.init_containers or [])
    proxy_container = next((c for c in containers if c.name == PROXY), None)
    native = next((c for c in init_containers if c.name == PROXY and c.restart_policy == "Always"), None)
    proxy = proxy_container or native
    init = next((c.name for c in init_containers if c.name in INITS), "")
    annotations = pod.metadata.annotations or {}
    status_revision: str | None = None
    problems: list[str] = []
    raw_status = annotations.get(STATUS_ANNOTATION)
    if raw_status is not None:
        try:
            status = json.loads(raw_status)
            status_revision = str(status.get("revision", ""))
        except (ValueError, AttributeError):
            problems.append(f"{STATUS_ANNOTATION} is not valid JSON: {raw_status[:80]!r}")
    if proxy is not None:
        if not init:
            problems.append("istio-proxy present but no istio-init/istio-validation init container")
        if raw_status is None:
            problems.append(f"istio-proxy present but no {STATUS_ANNOTATION} annotation")
    elif raw_status is not None:
        problems.append(f"{STATUS_ANNOTATION} annotation present but no istio-proxy container")
    return PodInjection(
        name=pod.metadata.name,
        namespace=pod.metadata.namespace,
        has_proxy=proxy is not None,
        native_sidecar=native is not None,
        init=init,
        status_revision=status_revision,
        proxy_image=(proxy.image or "") if proxy is not None else "",
        problems=tuple(problems),
    )


def injection_findings(pods: Iterable[Any], *, expect_injected: bool, revision: str) -> list[str]:
    """One line per pod that does not look as expected (empty when all do)."""
    findings = []
    want_revision = revision or "default"
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        seen = inspect_pod(pod)
        where = f"{seen.namespace}/{seen.name}"
        if expect_injected:
            if not seen.has_proxy:
                findings.append(f"{where}: no istio-proxy sidecar")
                continue
            findings.extend(f"{where}: {problem}" for problem in seen.problems)
            if seen.status_revision is not None and seen.status_revision != want_revision:
                findings.append(
                    f"{where}: injected by revision {seen.status_revision!r}, expected {want_revision!r}"
                )
        elif seen.has_proxy or seen.status_revision is not None:
            findings.append(f"{where}: has a sidecar but its namespace is not injected")
    return findings


def pod_summary(pod: Any) -> dict[str, Any]:
    """The parts of a pod spec that show injection, for evidence attachments."""
    return {
        "name": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "labels": dict(pod.metadata.labels or {}),
        "annotations": {
            key: value
            for key, value in (pod.metadata.annotations or {}).items()
            if key.startswith(("sidecar.istio.io", "prometheus.io", "istio.io"))
        },
        "initContainers": [
            {"name": c.name, "image": c.image, "restartPolicy": c.restart_policy}
            for c in pod.spec.init_containers or []
        ],
        "containers": [{"name": c.name, "image": c.image} for c in pod.spec.containers or []],
    }


def create_injection_probe(kube: Any, namespace: str, name: str, labels: dict[str, str] | None = None) -> Any:
    """Create a sleeping pod and return it as admitted: injection happens at admission, so the pod
    as created is the pod as the webhook left it (the caller deletes it, or its namespace)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": name, "image": PROBE_IMAGE, "command": ["/bin/sleep", "infinity"]}],
        },
    }
    return kube.core.create_namespaced_pod(namespace, body)
