"""Installing Istio's control plane and ingress gateway: istioctl, Helm, a rendered manifest, or skip.

Whatever the method, the result is checked the same way afterwards: istiod (``istiod`` or
``istiod-<revision>``) and ``istio-ingressgateway`` in ``istio-system`` rolled out, and the
control-plane version read back from what is running. ``--meshcheck-reuse`` skips the install
when that check already passes for the requested version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.tools import run_tool
from pytest_meshcheck.kube.apply import apply_manifest
from pytest_meshcheck.kube.client import Kube, is_not_found, translated
from pytest_meshcheck.kube.wait import wait_for_rollout
from pytest_meshcheck.settings import Settings

ISTIO_NAMESPACE = "istio-system"
GATEWAY_NAME = "istio-ingressgateway"
HELM_REPO = "https://istio-release.storage.googleapis.com/charts"

Progress = Callable[[str, float], None]


@dataclass(frozen=True, kw_only=True)
class MeshInstall:
    """What is installed, as read back from the cluster (not as requested)."""

    version: str
    revision: str
    method: str
    namespace: str = ISTIO_NAMESPACE
    reused: bool = False
    #: The revision tag namespaces were moved to by an upgrade (``--meshcheck-revision-tag``).
    revision_tag: str = ""

    @property
    def istiod_name(self) -> str:
        return istiod_name(self.revision)

    @property
    def injection_revision(self) -> str:
        """What a new namespace is labelled with to be injected by this mesh: the revision tag,
        else the revision ("" is the default revision, ``istio-injection=enabled``). After a
        canary upgrade the old default revision is gone, so its label would inject nothing."""
        return self.revision_tag or self.revision


def istiod_name(revision: str) -> str:
    return f"istiod-{revision}" if revision else "istiod"


def image_tag(image: str) -> str:
    """``1.27.1`` from ``docker.io/istio/pilot:1.27.1`` (digest and ``-distroless`` dropped)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return ""
    tag = last.rsplit(":", 1)[1]
    for suffix in ("-distroless", "-debug"):
        tag = tag.removesuffix(suffix)
    return tag


def running_control_plane_version(kube: Kube, revision: str) -> str | None:
    """The version of the installed istiod of ``revision`` (from its container image), or None."""
    try:
        deployment = kube.apps.read_namespaced_deployment(istiod_name(revision), ISTIO_NAMESPACE)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    for container in deployment.spec.template.spec.containers or []:
        if container.name == "discovery" or "pilot" in (container.image or ""):
            return image_tag(container.image or "")
    return None


#: The shipped bundle's files, in apply order; the webhook file depends on the revision.
MANIFEST_FILES = ("namespace.yaml", "crds.yaml", "istiod.yaml", "{webhook}", "ingressgateway.yaml")


def istio_manifest_text(settings: Settings) -> str:
    """The bundle the ``manifest`` method applies: the user's ``--meshcheck-istio-manifest`` as is,
    else the shipped manifests in ``fixtures/istio/`` rendered for the version and revision.

    The shipped files are ``string.Template`` texts (see the header of each) with ``${VERSION}``,
    ``${HUB}``, ``${REVISION}`` (``default`` without one), ``${REVISION_SUFFIX}`` (``-<rev>`` or
    empty) and ``${NATIVE_SIDECARS}``.
    """
    from string import Template

    from pytest_meshcheck.resources import data_dir

    if settings.istio_manifest is not None:
        try:
            return settings.istio_manifest.read_text()
        except OSError as exc:
            raise InstallError(
                f"cannot read --meshcheck-istio-manifest {settings.istio_manifest}: {exc}"
            ) from exc
    revision = settings.istio_revision
    values = {
        "VERSION": settings.istio_version,
        "HUB": (settings.image_registry.rstrip("/") + "/istio")
        if settings.image_registry
        else "docker.io/istio",
        "REVISION": revision or "default",
        "REVISION_SUFFIX": f"-{revision}" if revision else "",
        "NATIVE_SIDECARS": "false",
    }
    webhook = "injector-webhook-revision.yaml" if revision else "injector-webhook.yaml"
    rendered = []
    for name in MANIFEST_FILES:
        path = data_dir() / "istio" / name.format(webhook=webhook)
        try:
            rendered.append(Template(path.read_text()).substitute(values).strip() + "\n")
        except OSError as exc:
            raise InstallError(f"the shipped Istio manifest {path} cannot be read: {exc}") from exc
        except (KeyError, ValueError) as exc:
            raise InstallError(f"the Istio manifest {path.name} has a bad placeholder: {exc}") from exc
    return "---\n".join(rendered)


def istioctl_install_args(settings: Settings, istioctl: Path, kubeconfig: Path, context: str) -> list[str]:
    args = [str(istioctl), "install", "-y", "--kubeconfig", str(kubeconfig)]
    if context:
        args += ["--context", context]
    args += ["--set", f"profile={settings.istio_profile}"]
    if settings.istio_revision:
        args += ["--set", f"revision={settings.istio_revision}"]
    if settings.image_registry:
        args += ["--set", f"hub={settings.image_registry.rstrip('/')}"]
    return args


def istioctl_uninstall_args(
    istioctl: Path, kubeconfig: Path, context: str, *, revision: str | None
) -> list[str]:
    """``istioctl uninstall`` of one revision (``""`` is the default one), or with ``None`` of every
    revision (``--purge``): a run removes what it installed, an upgrade only the old revision."""
    args = [str(istioctl), "uninstall", "-y", "--kubeconfig", str(kubeconfig)]
    if context:
        args += ["--context", context]
    if revision is None:
        args += ["--purge"]
    else:
        args += ["--revision", revision or "default"]
    return args


def helm_uninstall_args(helm: str, release: str, kubeconfig: Path, context: str) -> list[str]:
    """``helm uninstall`` of one release, waiting for its objects to go and quiet when it is absent."""
    args = [helm, "uninstall", release, "--namespace", ISTIO_NAMESPACE]
    args += ["--kubeconfig", str(kubeconfig), "--ignore-not-found", "--wait"]
    if context:
        args += ["--kube-context", context]
    return args


def helm_commands(settings: Settings, helm: str, kubeconfig: Path, context: str) -> list[list[str]]:
    """``helm upgrade --install`` for the base, istiod and gateway charts, in that order."""
    common = ["--repo", HELM_REPO, "--version", settings.istio_version, "--namespace", ISTIO_NAMESPACE]
    common += ["--kubeconfig", str(kubeconfig), "--wait", "--timeout", f"{int(settings.timeout)}s"]
    if context:
        common += ["--kube-context", context]
    istiod_values: list[str] = ["--set", f"profile={settings.istio_profile}"]
    if settings.istio_revision:
        istiod_values += ["--set", f"revision={settings.istio_revision}"]
    if settings.image_registry:
        istiod_values += ["--set", f"global.hub={settings.image_registry.rstrip('/')}"]
    return [
        [helm, "upgrade", "--install", "istio-base", "base", "--create-namespace", *common],
        [
            helm,
            "upgrade",
            "--install",
            istiod_name(settings.istio_revision),
            "istiod",
            *common,
            *istiod_values,
        ],
        [helm, "upgrade", "--install", GATEWAY_NAME, "gateway", *common],
    ]


def wait_for_control_plane(kube: Kube, settings: Settings, progress: Progress | None = None) -> None:
    for name in (istiod_name(settings.istio_revision), GATEWAY_NAME):
        wait_for_rollout(kube, ISTIO_NAMESPACE, name, timeout=settings.timeout, progress=progress)


class IstioInstaller:
    """Installs and removes Istio for one run with the method the settings name."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        kubeconfig: Path,
        context: str = "",
        manifest_text: Callable[[Settings], str] | None = None,
        istioctl: Callable[[], Path] | None = None,
        helm: str = "helm",
        progress: Progress | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.context = context
        self._manifest_text = manifest_text
        self._istioctl = istioctl
        self._helm = helm
        self._progress = progress
        self.installed: MeshInstall | None = None
        self._installed_by_us = False

    @property
    def method(self) -> str:
        return self.settings.install_method

    def mark_installed_by_run(self) -> None:
        """Record that this run installed the mesh (used when another process did the install)."""
        self._installed_by_us = True

    def install(self) -> MeshInstall:
        settings = self.settings
        revision = settings.istio_revision
        if self.method == "skip" or settings.reuse:
            with translated("reading the installed control plane"):
                found = running_control_plane_version(self.kube, revision)
            if found is not None and (self.method == "skip" or found == settings.istio_version):
                wait_for_control_plane(self.kube, settings, self._progress)
                self.installed = MeshInstall(
                    version=found, revision=revision, method=self.method, reused=True
                )
                return self.installed
            if self.method == "skip":
                raise InstallError(
                    f"--meshcheck-install=skip, but no {istiod_name(revision)} deployment "
                    f"runs in {ISTIO_NAMESPACE}"
                )
        self._installed_by_us = True
        if self.method == "manifest":
            if self._manifest_text is None:
                raise InstallError("the manifest installer was given no manifest")
            apply_manifest(
                self.kube, self._manifest_text(settings), timeout=settings.timeout, source="Istio manifest"
            )
        elif self.method == "istioctl":
            istioctl = self._require_istioctl()
            run_tool(
                istioctl_install_args(settings, istioctl, self.kubeconfig, self.context),
                timeout=settings.timeout + 60,
                what="istioctl install",
            )
        elif self.method == "helm":
            for command in helm_commands(settings, self._helm, self.kubeconfig, self.context):
                run_tool(command, timeout=settings.timeout + 60, what=f"helm install {command[3]}")
        else:  # pragma: no cover - settings validation keeps this unreachable
            raise InstallError(f"unknown install method {self.method!r}")
        wait_for_control_plane(self.kube, settings, self._progress)
        with translated("reading the installed control plane"):
            version = running_control_plane_version(self.kube, revision) or ""
        if version != settings.istio_version:
            raise InstallError(
                f"asked for Istio {settings.istio_version}, but {istiod_name(revision)} runs "
                f"{version or 'an unknown version'}"
            )
        self.installed = MeshInstall(version=version, revision=revision, method=self.method)
        return self.installed

    def uninstall(self) -> None:
        """Remove what ``install`` put there; leave a reused or skipped installation alone."""
        if not self._installed_by_us:
            return
        if self.method == "istioctl":
            # a revisioned install removes its own revision only; an unrevisioned one purges
            revision = self.settings.istio_revision or None
            run_tool(
                istioctl_uninstall_args(
                    self._require_istioctl(), self.kubeconfig, self.context, revision=revision
                ),
                timeout=self.settings.timeout,
                what="istioctl uninstall",
            )
        elif self.method == "helm":
            for release in (GATEWAY_NAME, istiod_name(self.settings.istio_revision), "istio-base"):
                run_tool(
                    helm_uninstall_args(self._helm, release, self.kubeconfig, self.context),
                    timeout=self.settings.timeout,
                    what=f"helm uninstall {release}",
                )
        elif self.method == "manifest" and self._manifest_text is not None:
            from pytest_meshcheck.kube.apply import delete_documents, load_documents

            docs = load_documents(self._manifest_text(self.settings), source="Istio manifest")
            delete_documents(self.kube, docs, timeout=self.settings.timeout)

    def _require_istioctl(self) -> Path:
        if self._istioctl is None:
            raise InstallError("the istioctl installer was given no istioctl")
        return self._istioctl()


def proxy_versions(pods: Sequence[Any]) -> dict[str, str]:
    """``namespace/pod -> proxy version`` for every pod with an istio-proxy (container or native sidecar)."""
    versions: dict[str, str] = {}
    for pod in pods:
        containers = list(pod.spec.containers or []) + list(pod.spec.init_containers or [])
        for container in containers:
            if container.name == "istio-proxy":
                versions[f"{pod.metadata.namespace}/{pod.metadata.name}"] = image_tag(container.image or "")
    return versions
