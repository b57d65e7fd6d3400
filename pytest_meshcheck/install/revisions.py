"""One control-plane revision at a time: installing a revision beside another (or over itself),
the gateway, revision tags, and removing one revision. The upgrade gate drives these steps, and
the mesh layer's teardown uses them to remove what an upgrade left.

The installers of ``install/istio.py`` do the work with the run's settings re-aimed at another
version and revision (``settings_for``), so the three install methods behave as they do for a
fresh install. For the manifest method the bundle is split by what each object belongs to (the
labels Istio's own manifests carry): the shared parts (namespace, CRDs), one revision's control
plane (everything labelled ``istio.io/rev``) and the ingress gateway (``app: istio-ingressgateway``),
because an upgrade changes them at different steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.istio import (
    GATEWAY_NAME,
    ISTIO_NAMESPACE,
    helm_commands,
    helm_uninstall_args,
    istio_manifest_text,
    istioctl_install_args,
    istioctl_uninstall_args,
    istiod_name,
)
from pytest_meshcheck.install.tools import run_tool
from pytest_meshcheck.kube.apply import apply_documents, delete_documents, load_documents
from pytest_meshcheck.kube.client import Kube, is_not_found, translated
from pytest_meshcheck.kube.wait import wait_for_rollout
from pytest_meshcheck.settings import Settings

Progress = Callable[[str, float], None]

WEBHOOK_API = ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
TAG_LABEL = "istio.io/tag"
REVISION_LABEL = "istio.io/rev"


def revision_label(revision: str) -> str:
    """How a revision is written in ``istio.io/rev`` labels ("default" for the unrevisioned one)."""
    return revision or "default"


def settings_for(settings: Settings, *, version: str, revision: str) -> Settings:
    """The run's settings as they would be for installing ``version`` as ``revision``: what the
    installers and manifest renderers take, so nothing here is a second copy of them."""
    return dataclasses.replace(settings, istio_version=version, istio_revision=revision)


def tag_webhook_name(tag: str) -> str:
    """The name ``istioctl tag set`` gives a tag's webhook configuration."""
    return f"istio-revision-tag-{tag}"


def injector_webhook_name(revision: str) -> str:
    return f"istio-sidecar-injector-{revision}" if revision else "istio-sidecar-injector"


@dataclass(frozen=True)
class BundleParts:
    shared: list[dict[str, Any]]
    control_plane: list[dict[str, Any]]
    gateway: list[dict[str, Any]]


def _labels(doc: Mapping[str, Any]) -> Mapping[str, str]:
    return (doc.get("metadata") or {}).get("labels") or {}


def split_bundle(docs: Sequence[dict[str, Any]]) -> BundleParts:
    """Sort an Istio bundle's objects into shared, one revision's control plane, and gateway."""
    shared: list[dict[str, Any]] = []
    control_plane: list[dict[str, Any]] = []
    gateway: list[dict[str, Any]] = []
    for doc in docs:
        labels = _labels(doc)
        if labels.get("app") == GATEWAY_NAME or labels.get("istio") == "ingressgateway":
            gateway.append(doc)
        elif REVISION_LABEL in labels and doc.get("kind") != "CustomResourceDefinition":
            control_plane.append(doc)
        else:
            shared.append(doc)
    return BundleParts(shared, control_plane, gateway)


class ControlPlane:
    """The upgrade's hands on the control plane, for the run's install method."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        kubeconfig: Path,
        context: str,
        istioctl_for: Callable[[str], Path] | None = None,
        helm: str = "helm",
        progress: Progress | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.context = context
        self.method = settings.install_method
        self._istioctl_for = istioctl_for
        self._helm = helm
        self._progress = progress

    # --- the pieces -----------------------------------------------------------------------
    def _bundle(self, version: str, revision: str) -> BundleParts:
        text = istio_manifest_text(settings_for(self.settings, version=version, revision=revision))
        return split_bundle(load_documents(text, source=f"Istio {version} manifest"))

    def _istioctl(self, version: str) -> Path:
        if self._istioctl_for is None:
            raise InstallError("the upgrade was given no way to get istioctl")
        return self._istioctl_for(version)

    def _wait(self, name: str) -> None:
        wait_for_rollout(
            self.kube, ISTIO_NAMESPACE, name, timeout=self.settings.timeout, progress=self._progress
        )

    # --- steps ------------------------------------------------------------------------------
    def install_control_plane(self, version: str, revision: str) -> None:
        """Install (or, for the same revision, upgrade in place) istiod of ``revision`` at ``version``,
        leaving the gateway to ``upgrade_gateway`` where the method allows it."""
        target = settings_for(self.settings, version=version, revision=revision)
        if self.method == "manifest":
            parts = self._bundle(version, revision)
            apply_documents(self.kube, parts.shared + parts.control_plane, timeout=self.settings.timeout)
        elif self.method == "istioctl":
            # istioctl installs the revision's gateway with it: it is upgraded in this step
            run_tool(
                istioctl_install_args(target, self._istioctl(version), self.kubeconfig, self.context),
                timeout=self.settings.timeout + 60,
                what=f"istioctl install {version}",
            )
        elif self.method == "helm":
            base, istiod, _gateway = helm_commands(target, self._helm, self.kubeconfig, self.context)
            for command in (base, istiod):
                run_tool(command, timeout=self.settings.timeout + 60, what=f"helm upgrade {command[3]}")
        else:
            raise InstallError(f"cannot upgrade a mesh installed with --meshcheck-install={self.method}")
        self._wait(istiod_name(revision))

    def upgrade_gateway(self, version: str, revision: str) -> None:
        """The ingress gateway at ``version``, configured by ``revision``'s istiod."""
        target = settings_for(self.settings, version=version, revision=revision)
        if self.method == "manifest":
            apply_documents(self.kube, self._bundle(version, revision).gateway, timeout=self.settings.timeout)
        elif self.method == "helm":
            _base, _istiod, gateway = helm_commands(target, self._helm, self.kubeconfig, self.context)
            if revision:
                gateway += ["--set", f"revision={revision}"]
            run_tool(gateway, timeout=self.settings.timeout + 60, what="helm upgrade gateway")
        self._wait(GATEWAY_NAME)

    def point_tag(self, tag: str, revision: str) -> None:
        """Create or move revision tag ``tag`` to ``revision``: a copy of the revision's injector
        webhook that selects namespaces labelled ``istio.io/rev=<tag>`` (what ``istioctl tag set``
        writes), applied over the Kubernetes API so it works whatever installed the revision."""
        source_name = injector_webhook_name(revision)
        with translated(f"reading MutatingWebhookConfiguration {source_name}"):
            resource = self.kube.dynamic.resources.get(api_version=WEBHOOK_API[0], kind=WEBHOOK_API[1])
            source = resource.get(name=source_name).to_dict()
        webhooks = []
        for original in source.get("webhooks") or []:
            entry = dict(original)
            selector = dict(entry.get("namespaceSelector") or {})
            expressions = [
                {**expression, "operator": "In", "values": [tag]}
                if expression.get("key") == REVISION_LABEL
                else expression
                for expression in selector.get("matchExpressions") or []
            ]
            if expressions:
                selector["matchExpressions"] = expressions
                entry["namespaceSelector"] = selector
            name = str(entry.get("name", ""))
            entry["name"] = f"{tag}.{name.removeprefix('rev.')}" if name.startswith("rev.") else name
            webhooks.append(entry)
        body = {
            "apiVersion": WEBHOOK_API[0],
            "kind": WEBHOOK_API[1],
            "metadata": {
                "name": tag_webhook_name(tag),
                "labels": {
                    "app": "sidecar-injector",
                    REVISION_LABEL: revision_label(revision),
                    TAG_LABEL: tag,
                },
            },
            "webhooks": webhooks,
        }
        apply_documents(self.kube, [body], timeout=self.settings.timeout)

    def remove_tag(self, tag: str) -> None:
        body = {
            "apiVersion": WEBHOOK_API[0],
            "kind": WEBHOOK_API[1],
            "metadata": {"name": tag_webhook_name(tag)},
        }
        delete_documents(self.kube, [body], timeout=self.settings.timeout)

    def remove_control_plane(self, version: str, revision: str) -> None:
        """Remove one revision's control plane (istiod, its webhook, configuration and RBAC), leaving
        CRDs, the namespace, the gateway and the other revision alone."""
        if self.method == "manifest":
            delete_documents(
                self.kube, self._bundle(version, revision).control_plane, timeout=self.settings.timeout
            )
        elif self.method == "istioctl":
            run_tool(
                istioctl_uninstall_args(
                    self._istioctl(version), self.kubeconfig, self.context, revision=revision
                ),
                timeout=self.settings.timeout,
                what=f"istioctl uninstall --revision {revision_label(revision)}",
            )
        elif self.method == "helm":
            run_tool(
                helm_uninstall_args(self._helm, istiod_name(revision), self.kubeconfig, self.context),
                timeout=self.settings.timeout,
                what=f"helm uninstall {istiod_name(revision)}",
            )
        self._wait_gone(istiod_name(revision))

    def _wait_gone(self, deployment: str) -> None:
        from pytest_meshcheck.kube.diagnostics import collect
        from pytest_meshcheck.kube.wait import Progress as Seen
        from pytest_meshcheck.kube.wait import wait_until

        def check() -> Seen:
            try:
                self.kube.apps.read_namespaced_deployment(deployment, ISTIO_NAMESPACE)
            except Exception as exc:
                if is_not_found(exc):
                    return Seen(True, "gone")
                raise
            return Seen(False, "still present")

        wait_until(
            check,
            what=f"deployment {ISTIO_NAMESPACE}/{deployment} to be removed",
            timeout=self.settings.timeout,
            evidence=lambda: collect(self.kube, ISTIO_NAMESPACE),
            progress=self._progress,
        )
