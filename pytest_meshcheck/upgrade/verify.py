"""What must be true of the mesh before and after an upgrade, each as a list of findings.

A finding is one line a platform engineer can act on ("bookinfo/reviews-v2-...: proxy 1.26.3,
expected 1.27.1"); an empty list means the check passed. The same checks run before the upgrade
(so a mesh that was already broken is reported as such, not blamed on the upgrade) and after it.
"""

from __future__ import annotations

import uuid
from typing import Any

from pytest_meshcheck.checks.gateway import wait_for_route
from pytest_meshcheck.checks.injection import create_injection_probe, inspect_pod
from pytest_meshcheck.checks.probe import Probe
from pytest_meshcheck.checks.versions import await_connected_proxies, meshed_pods, proxy_id
from pytest_meshcheck.install.bookinfo import delete_namespace, ensure_namespace
from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE, image_tag
from pytest_meshcheck.install.revisions import REVISION_LABEL, TAG_LABEL, revision_label
from pytest_meshcheck.kube.client import Kube, translated
from pytest_meshcheck.upgrade.plan import UpgradePlan

BOOKINFO_TITLE = "Simple Bookstore App"


def proxy_findings(kube: Kube, *, version: str, revision: str) -> list[str]:
    """Every live proxy runs ``version`` and, where injected, was injected by ``revision``."""
    findings = []
    for pod in meshed_pods(kube):
        seen = inspect_pod(pod)
        where = f"{seen.namespace}/{seen.name}"
        running = image_tag(seen.proxy_image)
        if running != version:
            findings.append(f"{where}: proxy {running or seen.proxy_image}, expected {version}")
        if seen.status_revision is not None and seen.status_revision != revision_label(revision):
            findings.append(
                f"{where}: injected by revision {seen.status_revision}, expected {revision_label(revision)}"
            )
    return findings


def connection_findings(kube: Kube, istiod: str, *, timeout: float) -> tuple[list[str], list[dict[str, Any]]]:
    """Every live proxy is connected to ``istiod`` (its syncz lists it)."""
    expected = {proxy_id(p) for p in meshed_pods(kube)}
    missing, rows = await_connected_proxies(kube, istiod, expected, timeout=timeout)
    return [f"{proxy}: not connected to {istiod}" for proxy in sorted(missing)], rows


def pods_left_behind(kube: Kube, plan: UpgradePlan) -> list[str]:
    """Pods (terminating ones too) still running the old version's proxy or, for canary, still
    injected by the old revision (in place, the revision stays: only the version tells)."""
    left = []
    for pod in kube.core.list_pod_for_all_namespaces().items:
        seen = inspect_pod(pod)
        if not seen.has_proxy:
            continue
        on_old_revision = plan.canary and seen.status_revision == revision_label(plan.from_revision)
        if on_old_revision or image_tag(seen.proxy_image) == plan.from_version:
            left.append(f"{seen.namespace}/{seen.name} (proxy {image_tag(seen.proxy_image)})")
    return sorted(left)


def old_revision_objects(kube: Kube, revision: str) -> list[str]:
    """Objects of the removed revision that are still there: its istiod's Deployment, Services,
    ConfigMaps and ServiceAccounts in istio-system, and its injector webhook configurations
    (a revision tag pointing at it counts too)."""
    selector = f"{REVISION_LABEL}={revision_label(revision)}"
    left: list[str] = []
    with translated("listing the old revision's objects"):
        listings: list[tuple[str, list[Any]]] = [
            (
                "Deployment",
                kube.apps.list_namespaced_deployment(ISTIO_NAMESPACE, label_selector=selector).items,
            ),
            ("Service", kube.core.list_namespaced_service(ISTIO_NAMESPACE, label_selector=selector).items),
            (
                "ConfigMap",
                kube.core.list_namespaced_config_map(ISTIO_NAMESPACE, label_selector=selector).items,
            ),
            (
                "ServiceAccount",
                kube.core.list_namespaced_service_account(ISTIO_NAMESPACE, label_selector=selector).items,
            ),
        ]
        webhooks = kube.dynamic.resources.get(
            api_version="admissionregistration.k8s.io/v1", kind="MutatingWebhookConfiguration"
        )
        listings.append(("MutatingWebhookConfiguration", list(webhooks.get(label_selector=selector).items)))
    for kind, items in listings:
        for item in items:
            name = item.metadata.name
            labels = dict(item.metadata.labels or {})
            if labels.get("app") == GATEWAY_NAME:
                continue  # the gateway moved to the new revision in place
            tag = f" (tag {labels[TAG_LABEL]})" if TAG_LABEL in labels else ""
            left.append(f"{kind} {name}{tag}")
    return sorted(left)


def new_pod_findings(kube: Kube, plan: UpgradePlan, *, timeout: float) -> list[str]:
    """A pod created now, in a namespace labelled the way moved namespaces are, is injected by the
    new revision with a ``to_version`` proxy: the new webhook works for new pods."""
    namespace = f"meshcheck-upgrade-{uuid.uuid4().hex[:6]}"
    ensure_namespace(kube, namespace, plan.namespace_label)
    try:
        with translated(f"creating a pod in {namespace}"):
            pod = create_injection_probe(kube, namespace, "after-upgrade")
        seen = inspect_pod(pod)
        label = ", ".join(f"{k}={v}" for k, v in plan.namespace_label.items())
        if not seen.has_proxy:
            return [f"a new pod in a namespace labelled {label} was not injected"]
        findings = [f"new pod: {problem}" for problem in seen.problems]
        if seen.status_revision != revision_label(plan.to_revision):
            findings.append(
                f"a new pod was injected by revision {seen.status_revision}, expected "
                f"{revision_label(plan.to_revision)}"
            )
        if image_tag(seen.proxy_image) != plan.to_version:
            findings.append(f"a new pod got proxy {seen.proxy_image}, expected {plan.to_version}")
        return findings
    finally:
        delete_namespace(kube, namespace, timeout=timeout)


def gateway_findings(gateway_url: str, *, timeout: float) -> list[str]:
    response = wait_for_route(gateway_url, "/productpage", timeout=timeout)
    if response.status != 200:
        return [f"the gateway answers /productpage with {response.status}"]
    if BOOKINFO_TITLE not in response.body:
        return ["the gateway's /productpage is not Bookinfo's product page"]
    return []


def mtls_findings(probe: Probe, *, mode: str) -> list[str]:
    """Plaintext from outside the mesh is refused under STRICT; a request from inside is served."""
    url = f"http://httpbin.{probe.namespaces['in_mesh']}:8000/ip"
    findings = []
    inside = probe.curl(url, where="in_mesh")
    if inside.status != 200:
        findings.append(f"a request from inside the mesh got {inside.status or 'no response'} from httpbin")
    if mode == "STRICT":
        outside = probe.curl(url, where="outside")
        if outside.connected:
            findings.append(f"STRICT mTLS not enforced: plaintext from outside got HTTP {outside.status}")
    return findings
