"""Moving workloads to the new revision: relabel their namespaces, then restart them.

Sidecars are injected at pod creation, so a proxy only changes version when its pod is replaced:
``kubectl rollout restart`` (a new ``kubectl.kubernetes.io/restartedAt`` annotation on the pod
template) rolls each Deployment with its own surge and availability settings, which is what a
platform team does by hand and what keeps traffic flowing while it happens.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from pytest_meshcheck.install.bookinfo import ensure_namespace
from pytest_meshcheck.install.istio import ISTIO_NAMESPACE
from pytest_meshcheck.install.revisions import revision_label
from pytest_meshcheck.kube.client import Kube, translated, with_retries
from pytest_meshcheck.kube.diagnostics import collect
from pytest_meshcheck.kube.wait import Progress, wait_for_rollout, wait_until
from pytest_meshcheck.upgrade.plan import UpgradePlan

ProgressReporter = Callable[[str, float], None]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def selects_revision(labels: dict[str, str], revision: str, tags: frozenset[str] = frozenset()) -> bool:
    """Whether a namespace with ``labels`` is injected by ``revision`` (or one of its ``tags``), as
    the injector webhooks' namespace selectors decide: ``istio-injection`` wins over ``istio.io/rev``."""
    injection = labels.get("istio-injection")
    if injection is not None:
        return injection == "enabled" and revision_label(revision) in ({"default"} | set(tags))
    wanted = labels.get("istio.io/rev")
    return wanted is not None and wanted in ({revision_label(revision)} | set(tags))


def namespaces_on(kube: Kube, revision: str) -> list[str]:
    """The namespaces injected by ``revision``, in name order (never istio-system)."""
    with translated("listing namespaces"):
        items = kube.core.list_namespace().items
    found = []
    for namespace in items:
        name = namespace.metadata.name
        if name == ISTIO_NAMESPACE or namespace.status.phase == "Terminating":
            continue
        if selects_revision(dict(namespace.metadata.labels or {}), revision):
            found.append(name)
    return sorted(found)


def move_namespace(kube: Kube, namespace: str, plan: UpgradePlan) -> None:
    """Label ``namespace`` for the target revision (or tag), dropping ``istio-injection``, which
    would otherwise win over ``istio.io/rev``."""
    labels = plan.namespace_label
    remove = ("istio-injection",) if "istio.io/rev" in labels else ("istio.io/rev",)
    ensure_namespace(kube, namespace, labels, remove=remove)


def restart_deployments(
    kube: Kube, namespace: str, *, timeout: float, progress: ProgressReporter | None = None
) -> list[str]:
    """Roll every Deployment of ``namespace`` and wait until each rollout completed and the old pods
    are gone; returns the Deployments' names."""
    with translated(f"listing deployments in {namespace}"):
        deployments = kube.apps.list_namespaced_deployment(namespace).items
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = sorted(d.metadata.name for d in deployments)
    for name in names:
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}

        def patch(name: str = name, body: dict[str, Any] = body) -> Any:
            return kube.apps.patch_namespaced_deployment(name, namespace, body)

        with_retries(patch, action=f"restarting deployment {namespace}/{name}")
    for name in names:
        wait_for_rollout(kube, namespace, name, timeout=timeout, progress=progress)
    wait_for_old_pods_gone(kube, namespace, stamp, timeout=timeout, progress=progress)
    return names


def _restarted_at(pod: Any) -> str:
    return str((pod.metadata.annotations or {}).get(RESTARTED_AT, ""))


def wait_for_old_pods_gone(
    kube: Kube, namespace: str, stamp: str, *, timeout: float, progress: ProgressReporter | None = None
) -> None:
    """Wait until every pod of ``namespace`` that belongs to a Deployment comes from the restart
    ``stamp`` (pods being drained still count: their connections are part of the window)."""

    def check() -> Progress:
        pods = kube.core.list_namespaced_pod(namespace).items
        old = [
            p.metadata.name
            for p in pods
            if any(ref.kind == "ReplicaSet" for ref in (p.metadata.owner_references or []))
            and _restarted_at(p) != stamp
        ]
        return Progress(
            not old, f"{len(old)} old pods left" + (f": {', '.join(sorted(old)[:5])}" if old else "")
        )

    wait_until(
        check,
        what=f"the old pods of {namespace} to be gone",
        timeout=timeout,
        interval=1.0,
        evidence=lambda: collect(kube, namespace),
        progress=progress,
    )
