"""Installing the application under test: Bookinfo, its ingress, the mesh-wide mTLS policy, probe apps.

Probe apps give the mTLS checks a client inside the mesh (curl + httpbin in an injected namespace)
and one outside it (curl in a namespace without injection), as Istio's mTLS migration task does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import yaml

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.images import rewrite_documents
from pytest_meshcheck.kube.apply import ObjectRef, apply_documents, delete_documents, load_documents
from pytest_meshcheck.kube.client import Kube, is_not_found, translated, with_retries
from pytest_meshcheck.kube.wait import Progress, wait_for_rollout, wait_until
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import Settings

PROBE_IN_MESH_NAMESPACE = "meshcheck-probe-in"
PROBE_OUTSIDE_NAMESPACE = "meshcheck-probe-out"

ProgressReporter = Callable[[str, float], None]


@dataclass(frozen=True, kw_only=True)
class AppInstall:
    """An installed application: where it lives and what it consists of."""

    namespace: str
    deployments: tuple[str, ...]
    services: tuple[str, ...]
    injected: bool
    applied: tuple[ObjectRef, ...] = field(default_factory=tuple)


def injection_labels(revision: str) -> dict[str, str]:
    """Namespace labels that turn sidecar injection on for ``revision`` (default: the default one)."""
    return {"istio.io/rev": revision} if revision else {"istio-injection": "enabled"}


def ensure_namespace(kube: Kube, name: str, labels: Mapping[str, str], *, remove: Sequence[str] = ()) -> None:
    """Create ``name`` or update its labels (removing ``remove``), waiting out a terminating namespace."""

    def check() -> Progress:
        try:
            existing = kube.core.read_namespace(name)
        except Exception as exc:
            if is_not_found(exc):
                return Progress(True, "absent")
            raise
        if existing.status.phase == "Terminating":
            return Progress(False, "terminating")
        return Progress(True, "present")

    wait_until(check, what=f"namespace {name} to be usable", timeout=120, interval=1.0)
    patch_labels: dict[str, str | None] = {key: None for key in remove}
    patch_labels.update(labels)
    body = {"metadata": {"name": name, "labels": patch_labels}}

    def apply() -> Any:
        try:
            return kube.core.patch_namespace(name, body)
        except Exception as exc:
            if not is_not_found(exc):
                raise
        return kube.core.create_namespace({"metadata": {"name": name, "labels": dict(labels)}})

    with_retries(apply, action=f"creating namespace {name}")


def _documents(path: Path, settings: Settings, *, source: str) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InstallError(f"cannot read {source} {path}: {exc}") from exc
    return rewrite_documents(load_documents(text, source=str(path)), settings.image_registry)


def _names(docs: Sequence[Mapping[str, Any]], kind: str) -> tuple[str, ...]:
    return tuple(str(d["metadata"]["name"]) for d in docs if d.get("kind") == kind)


def install_app(
    kube: Kube,
    settings: Settings,
    *,
    namespace: str,
    manifests: Sequence[Path],
    injected: bool,
    injection_revision: str | None = None,
    progress: ProgressReporter | None = None,
) -> AppInstall:
    """Apply ``manifests`` in ``namespace`` and wait for their rollouts. An injected namespace is
    labelled for ``injection_revision`` (default: the run's ``--meshcheck-istio-revision``; after
    an upgrade, the mesh's ``MeshInstall.injection_revision``)."""
    revision = settings.istio_revision if injection_revision is None else injection_revision
    labels = injection_labels(revision) if injected else {"istio-injection": "disabled"}
    remove = ("istio-injection",) if injected and revision else ()
    ensure_namespace(kube, namespace, labels, remove=remove)
    docs: list[dict[str, Any]] = []
    for path in manifests:
        docs.extend(_documents(path, settings, source="manifest"))
    applied = apply_documents(kube, docs, namespace=namespace, timeout=settings.timeout)
    deployments = _names(docs, "Deployment")
    for name in deployments:
        wait_for_rollout(kube, namespace, name, timeout=settings.timeout, progress=progress)
    return AppInstall(
        namespace=namespace,
        deployments=deployments,
        services=_names(docs, "Service"),
        injected=injected,
        applied=tuple(applied),
    )


def bookinfo_manifest(settings: Settings) -> Path:
    return settings.bookinfo_manifest or data_file("bookinfo", "bookinfo.yaml")


def install_bookinfo(kube: Kube, settings: Settings, progress: ProgressReporter | None = None) -> AppInstall:
    """Bookinfo in ``--meshcheck-namespace`` with injection on, plus its Gateway and VirtualService."""
    return install_app(
        kube,
        settings,
        namespace=settings.namespace,
        manifests=[bookinfo_manifest(settings), data_file("bookinfo", "bookinfo-gateway.yaml")],
        injected=True,
        progress=progress,
    )


def peer_authentication_documents(settings: Settings) -> list[dict[str, Any]]:
    text = Template(data_file("mesh", "peer-authentication.yaml").read_text()).substitute(
        MTLS_MODE=settings.mtls_mode
    )
    return load_documents(text, source="mesh-wide PeerAuthentication")


def apply_mesh_policy(kube: Kube, settings: Settings) -> list[ObjectRef]:
    """The mesh-wide PeerAuthentication (STRICT unless --meshcheck-mtls-mode says PERMISSIVE)."""
    return apply_documents(kube, peer_authentication_documents(settings), timeout=settings.timeout)


def install_probes(
    kube: Kube, settings: Settings, progress: ProgressReporter | None = None
) -> tuple[AppInstall, AppInstall]:
    """httpbin + curl inside the mesh, curl outside it."""
    inside = install_app(
        kube,
        settings,
        namespace=PROBE_IN_MESH_NAMESPACE,
        manifests=[data_file("probes", "httpbin.yaml"), data_file("probes", "curl.yaml")],
        injected=True,
        progress=progress,
    )
    outside = install_app(
        kube,
        settings,
        namespace=PROBE_OUTSIDE_NAMESPACE,
        manifests=[data_file("probes", "curl.yaml")],
        injected=False,
        progress=progress,
    )
    return inside, outside


def delete_namespace(kube: Kube, name: str, *, timeout: float) -> None:
    """Delete a namespace and wait until it is gone (its contents go with it)."""
    try:
        with translated(f"deleting namespace {name}"):
            kube.core.delete_namespace(name)
    except Exception as exc:
        if is_not_found(exc.__cause__ or exc):
            return
        raise

    def gone() -> Progress:
        try:
            namespace = kube.core.read_namespace(name)
        except Exception as exc:
            if is_not_found(exc):
                return Progress(True, "deleted")
            raise
        return Progress(False, f"phase {namespace.status.phase}")

    wait_until(gone, what=f"namespace {name} to be deleted", timeout=timeout, interval=1.0)


def remove_mesh_policy(kube: Kube, settings: Settings) -> None:
    delete_documents(kube, peer_authentication_documents(settings), timeout=settings.timeout)


def describe(install: AppInstall) -> str:
    return yaml.safe_dump(
        {
            "namespace": install.namespace,
            "injected": install.injected,
            "deployments": list(install.deployments),
            "services": list(install.services),
        },
        sort_keys=False,
    )
