"""Waiting for cluster state, with a deadline and the evidence to explain a timeout.

Each wait polls a condition that reads the cluster (no fixed sleeps standing in for a condition)
and, when the deadline passes, raises ``ReadinessTimeout`` naming what was awaited, the last state
seen, and diagnostics collected at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.errors import ReadinessTimeout
from pytest_meshcheck.kube.client import Kube, is_not_found, is_transient, translate


@dataclass(frozen=True)
class Progress:
    """One look at the awaited state: done or not, and a one-line description of it."""

    done: bool
    state: str


ProgressReporter = Callable[[str, float], None]


def wait_until(
    check: Callable[[], Progress],
    *,
    what: str,
    timeout: float,
    interval: float = 1.0,
    evidence: Callable[[], Mapping[str, str]] | None = None,
    progress: ProgressReporter | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll ``check`` until it reports done; return its last state. Transient API errors count as
    "not yet" (the API server may restart during an upgrade); other errors propagate."""
    start = clock()
    deadline = start + timeout
    state = "not checked yet"
    while True:
        try:
            seen = check()
        except Exception as exc:
            if not is_transient(exc):
                raise translate(exc, f"checking {what}") from exc
            seen = Progress(False, f"API not answering ({type(exc).__name__})")
        state = seen.state
        if seen.done:
            return state
        now = clock()
        if progress is not None:
            progress(f"waiting for {what}: {state}", now - start)
        if now >= deadline:
            attached: Mapping[str, str] = {}
            if evidence is not None:
                try:
                    attached = evidence()
                except Exception as exc:  # evidence must never hide the timeout itself
                    attached = {"diagnostics-error": f"{type(exc).__name__}: {exc}"}
            raise ReadinessTimeout(what, timeout_s=timeout, last_state=state, evidence=attached)
        sleep(min(interval, max(0.0, deadline - now)))


def deployment_progress(deployment: Any) -> Progress:
    """Rollout status as ``kubectl rollout status`` judges it."""
    spec_replicas = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    status = deployment.status
    if status is None:
        return Progress(False, "the deployment controller has not reported a status yet")
    generation = deployment.metadata.generation or 0
    observed = status.observed_generation or 0
    updated = status.updated_replicas or 0
    total = status.replicas or 0
    available = status.available_replicas or 0
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return Progress(False, f"progress deadline exceeded: {condition.message}")
    if observed < generation:
        return Progress(False, "waiting for the deployment spec update to be observed")
    if updated < spec_replicas:
        return Progress(False, f"{updated} of {spec_replicas} updated replicas")
    if total > updated:
        return Progress(False, f"{total - updated} old replicas pending termination")
    if available < updated:
        return Progress(False, f"{available} of {updated} updated replicas available")
    return Progress(True, f"{available}/{spec_replicas} available")


def wait_for_rollout(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    timeout: float,
    progress: ProgressReporter | None = None,
) -> str:
    from pytest_meshcheck.kube.diagnostics import collect

    def check() -> Progress:
        try:
            deployment = kube.apps.read_namespaced_deployment(name, namespace)
        except Exception as exc:
            if is_not_found(exc):
                return Progress(False, "deployment does not exist yet")
            raise
        return deployment_progress(deployment)

    return wait_until(
        check,
        what=f"rollout of deployment {namespace}/{name}",
        timeout=timeout,
        evidence=lambda: collect(kube, namespace),
        progress=progress,
    )


def pod_is_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def describe_pod_state(pod: Any) -> str:
    """``name: phase (reason)`` with the first waiting/terminated container reason, as kubectl shows."""
    reason = pod.status.reason or ""
    statuses = list(pod.status.init_container_statuses or []) + list(pod.status.container_statuses or [])
    for status in statuses:
        state = status.state
        if state is not None and state.waiting is not None and state.waiting.reason:
            reason = state.waiting.reason
            break
        if (
            state is not None
            and state.terminated is not None
            and state.terminated.reason not in (None, "Completed")
        ):
            reason = state.terminated.reason
            break
    return f"{pod.metadata.name}: {pod.status.phase}" + (f" ({reason})" if reason else "")


def wait_for_pods_ready(
    kube: Kube,
    namespace: str,
    *,
    label_selector: str = "",
    min_count: int = 1,
    timeout: float,
    progress: ProgressReporter | None = None,
) -> list[Any]:
    """Wait until at least ``min_count`` pods match and all of them are Ready; return them."""
    from pytest_meshcheck.kube.diagnostics import collect

    ready_pods: list[Any] = []

    def check() -> Progress:
        pods = kube.core.list_namespaced_pod(namespace, label_selector=label_selector).items
        live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
        not_ready = [describe_pod_state(pod) for pod in live if not pod_is_ready(pod)]
        if len(live) >= min_count and not not_ready:
            ready_pods[:] = live
            return Progress(True, f"{len(live)} pods ready")
        if len(live) < min_count:
            return Progress(False, f"{len(live)} of at least {min_count} pods exist")
        return Progress(False, "not ready: " + "; ".join(not_ready[:5]))

    selector = f" with labels {label_selector}" if label_selector else ""
    wait_until(
        check,
        what=f"pods in {namespace}{selector} to be ready",
        timeout=timeout,
        evidence=lambda: collect(kube, namespace, label_selector=label_selector),
        progress=progress,
    )
    return ready_pods
