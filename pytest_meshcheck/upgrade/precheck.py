"""Before touching anything: can this upgrade be done here? (what ``istioctl x precheck`` asks)

It fails early, with the reason, when the versions are outside what Istio supports (one minor at a
time in place, at most two with a canary, never a downgrade), when the install method cannot
produce the target version, when the target revision already exists, when the injector webhook
is missing or has no CA bundle, or when Istio's CRDs are not established. Proxies that are not on
the installed version are reported too: an upgrade from a mixed mesh proves little.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.checks.versions import meshed_pods, version_tuple
from pytest_meshcheck.install.istio import ISTIO_NAMESPACE, image_tag
from pytest_meshcheck.install.revisions import injector_webhook_name
from pytest_meshcheck.kube.client import Kube, is_not_found, translated
from pytest_meshcheck.settings import Settings
from pytest_meshcheck.upgrade.plan import UpgradePlan

#: Istio's supported upgrade distance in minor versions, per strategy.
MAX_MINORS = {"in-place": 1, "canary": 2}

#: CRDs the gate's own checks and Bookinfo use; each must be established before and after.
REQUIRED_CRDS = (
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "peerauthentications.security.istio.io",
)


@dataclass(kw_only=True)
class Precheck:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"problems": list(self.problems), "notes": list(self.notes)}


def version_problems(plan: UpgradePlan) -> list[str]:
    source, target = version_tuple(plan.from_version), version_tuple(plan.to_version)
    if source is None or target is None:
        return [f"cannot compare versions {plan.from_version!r} and {plan.to_version!r}"]
    if target <= source:
        return [
            f"--meshcheck-upgrade-to={plan.to_version} is not newer than the installed {plan.from_version}"
        ]
    if target[0] != source[0]:
        return [
            f"an upgrade across major versions ({plan.from_version} -> {plan.to_version}) is not supported"
        ]
    minors = target[1] - source[1]
    allowed = MAX_MINORS[plan.strategy]
    if minors > allowed:
        return [
            f"{plan.strategy} upgrades are supported across at most {allowed} minor version(s); "
            f"{plan.from_version} -> {plan.to_version} is {minors}"
        ]
    return []


def method_problems(settings: Settings) -> list[str]:
    if settings.install_method == "skip":
        return ["--meshcheck-install=skip: the run did not install Istio, so it cannot upgrade it"]
    if settings.install_method == "manifest" and settings.istio_manifest is not None:
        return [
            "--meshcheck-istio-manifest is one release's rendered bundle; the upgrade needs the shipped "
            "templates (leave it unset) or --meshcheck-install=istioctl|helm"
        ]
    return []


def _webhook_problems(kube: Kube, revision: str) -> list[str]:
    name = injector_webhook_name(revision)
    resource = kube.dynamic.resources.get(
        api_version="admissionregistration.k8s.io/v1", kind="MutatingWebhookConfiguration"
    )
    try:
        webhook = resource.get(name=name).to_dict()
    except Exception as exc:
        if is_not_found(exc):
            return [f"the injector webhook {name} of the installed revision is missing"]
        raise
    entries = webhook.get("webhooks") or []
    if not entries:
        return [f"the injector webhook {name} has no webhooks"]
    unsigned = [e.get("name", "?") for e in entries if not (e.get("clientConfig") or {}).get("caBundle")]
    if unsigned:
        return [f"the injector webhook {name} has no caBundle in: {', '.join(unsigned)}"]
    return []


def _crd_problems(kube: Kube) -> list[str]:
    resource = kube.dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    problems = []
    for name in REQUIRED_CRDS:
        try:
            crd = resource.get(name=name).to_dict()
        except Exception as exc:
            if is_not_found(exc):
                problems.append(f"CRD {name} is missing")
                continue
            raise
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            problems.append(f"CRD {name} is not established")
    return problems


def _target_revision_problems(kube: Kube, plan: UpgradePlan) -> list[str]:
    if not plan.canary:
        return []
    if plan.to_revision == plan.from_revision:
        return [f"the canary revision {plan.to_istiod} is the installed one"]
    try:
        kube.apps.read_namespaced_deployment(plan.to_istiod, ISTIO_NAMESPACE)
    except Exception as exc:
        if is_not_found(exc):
            return []
        raise
    return [f"{plan.to_istiod} already exists in {ISTIO_NAMESPACE}: remove it or upgrade to another version"]


def run_precheck(kube: Kube, settings: Settings, plan: UpgradePlan) -> Precheck:
    result = Precheck()
    result.problems += version_problems(plan)
    result.problems += method_problems(settings)
    if settings.revision_tag and not plan.canary:
        result.notes.append("--meshcheck-revision-tag only applies to canary upgrades; ignored in place")
    with translated("checking the cluster before the upgrade"):
        result.problems += _webhook_problems(kube, plan.from_revision)
        result.problems += _crd_problems(kube)
        result.problems += _target_revision_problems(kube, plan)
        stray = sorted(
            f"{p.metadata.namespace}/{p.metadata.name} ({image_tag(c.image or '')})"
            for p in meshed_pods(kube)
            for c in list(p.spec.containers or []) + list(p.spec.init_containers or [])
            if c.name == "istio-proxy" and image_tag(c.image or "") != plan.from_version
        )
    if stray:
        result.problems.append(
            f"{len(stray)} proxies do not run the installed {plan.from_version}: " + ", ".join(stray[:10])
        )
    return result
