"""Evidence for failures: events, pod status and container logs (istio-proxy included).

Collected when a wait times out or a check fails, and attached to the report, so whoever reads a
red CI run sees *why* without re-running anything. Collection is best effort: a diagnostics error
is recorded in the evidence, never raised over the original failure.
"""

from __future__ import annotations

from typing import Any

from pytest_meshcheck.kube.client import Kube


def _event_time(event: Any) -> str:
    stamp = (
        event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    )
    return str(stamp or "")


def events_text(kube: Kube, namespace: str, *, limit: int = 200) -> str:
    events = kube.core.list_namespaced_event(namespace).items
    events.sort(key=_event_time)
    lines = [
        f"{_event_time(e)}  {e.type or ''}  {e.reason or ''}  "
        f"{(e.involved_object.kind or '')}/{(e.involved_object.name or '')}  {e.message or ''}"
        for e in events[-limit:]
    ]
    return "\n".join(lines) if lines else "(no events)"


def pods_text(pods: list[Any]) -> str:
    from pytest_meshcheck.kube.wait import describe_pod_state

    lines = []
    for pod in pods:
        statuses = list(pod.status.container_statuses or [])
        ready = sum(1 for s in statuses if s.ready)
        restarts = sum(s.restart_count or 0 for s in statuses)
        lines.append(
            f"{describe_pod_state(pod)}  ready {ready}/{len(statuses)}  restarts {restarts}  "
            f"node {pod.spec.node_name or '-'}  ip {pod.status.pod_ip or '-'}"
        )
    return "\n".join(lines) if lines else "(no pods)"


def container_names(pod: Any) -> list[str]:
    names = [c.name for c in pod.spec.init_containers or []]
    names += [c.name for c in pod.spec.containers or []]
    return names


def collect(
    kube: Kube,
    namespace: str,
    *,
    label_selector: str = "",
    tail_lines: int = 200,
    max_pods: int = 20,
) -> dict[str, str]:
    """Named text attachments describing ``namespace`` (optionally only some pods)."""
    evidence: dict[str, str] = {}
    try:
        evidence[f"events {namespace}"] = events_text(kube, namespace)
    except Exception as exc:
        evidence[f"events {namespace}"] = f"could not list events: {type(exc).__name__}: {exc}"
    try:
        pods = kube.core.list_namespaced_pod(namespace, label_selector=label_selector).items
    except Exception as exc:
        evidence[f"pods {namespace}"] = f"could not list pods: {type(exc).__name__}: {exc}"
        return evidence
    evidence[f"pods {namespace}"] = pods_text(pods)
    for pod in pods[:max_pods]:
        restarted = {s.name for s in pod.status.container_statuses or [] if (s.restart_count or 0) > 0}
        for container in container_names(pod):
            key = f"logs {namespace}/{pod.metadata.name}/{container}"
            try:
                evidence[key] = (
                    kube.core.read_namespaced_pod_log(
                        pod.metadata.name, namespace, container=container, tail_lines=tail_lines
                    )
                    or "(empty)"
                )
            except Exception as exc:
                evidence[key] = f"no logs: {type(exc).__name__}: {exc}"
            if container in restarted:
                try:
                    evidence[key + " (previous)"] = (
                        kube.core.read_namespaced_pod_log(
                            pod.metadata.name,
                            namespace,
                            container=container,
                            tail_lines=tail_lines,
                            previous=True,
                        )
                        or "(empty)"
                    )
                except Exception as exc:
                    evidence[key + " (previous)"] = f"no logs: {type(exc).__name__}: {exc}"
    return evidence
