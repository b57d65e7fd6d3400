"""The layers a run installs, in order: the mesh, its addons, Bookinfo, the probe apps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_meshcheck.install.addons import addon_pins, install_addons, uninstall_addons
from pytest_meshcheck.install.bookinfo import (
    PROBE_IN_MESH_NAMESPACE,
    PROBE_OUTSIDE_NAMESPACE,
    apply_mesh_policy,
    delete_namespace,
    install_bookinfo,
    install_probes,
    remove_mesh_policy,
)
from pytest_meshcheck.install.istio import IstioInstaller, MeshInstall
from pytest_meshcheck.install.layers import Layer, LayerContext
from pytest_meshcheck.install.revisions import ControlPlane
from pytest_meshcheck.resources import home_dir


def _installer(context: LayerContext) -> IstioInstaller:
    from pytest_meshcheck.install.istio import istio_manifest_text

    settings = context.settings
    istioctl_for = istioctl_getter(context)

    def istioctl() -> Path:
        return istioctl_for(settings.istio_version)

    return IstioInstaller(
        context.kube,
        settings,
        kubeconfig=context.handle.kubeconfig,
        context=context.handle.context,
        manifest_text=istio_manifest_text,
        istioctl=istioctl,
        progress=context.progress,
    )


def install_mesh(context: LayerContext) -> Mapping[str, Any]:
    installed = _installer(context).install()
    apply_mesh_policy(context.kube, context.settings)
    return {
        "version": installed.version,
        "revision": installed.revision,
        "method": installed.method,
        "reused": installed.reused,
        "mtls_mode": context.settings.mtls_mode,
    }


def uninstall_mesh(context: LayerContext, result: Mapping[str, Any]) -> None:
    remove_mesh_policy(context.kube, context.settings)
    if result.get("reused"):
        return
    if result.get("upgraded_from"):
        # The upgrade suite changed the mesh: remove its leftovers (a tag, the old revision if it
        # was not removed), then the installation as it is now, with the settings it was made with.
        remove_upgrade_leftovers(context, result)
        context = dataclasses.replace(
            context,
            settings=dataclasses.replace(
                context.settings,
                istio_version=str(result["version"]),
                istio_revision=str(result.get("revision", "")),
            ),
        )
    installer = _installer(context)
    installer.installed = mesh_from(result)
    installer.mark_installed_by_run()
    installer.uninstall()


def istioctl_getter(context: LayerContext) -> Callable[[str], Path]:
    """``version -> istioctl path``: the run's own binary for the version it was given for, a
    downloaded, checksum-verified release for any other (an upgrade's target)."""
    from pytest_meshcheck.install.istioctl import resolve_istioctl

    settings = context.settings

    def get(version: str) -> Path:
        explicit = settings.istioctl if version == settings.istio_version else None
        return resolve_istioctl(
            version,
            explicit=explicit,
            base_url=settings.istio_download_url,
            cache_dir=home_dir() / "istioctl",
        )

    return get


def control_plane_for(context: LayerContext) -> ControlPlane:
    """Revision-level control of the run's mesh, for the upgrade gate and for teardown."""
    return ControlPlane(
        context.kube,
        context.settings,
        kubeconfig=context.handle.kubeconfig,
        context=context.handle.context,
        istioctl_for=istioctl_getter(context),
        progress=context.progress,
    )


def remove_upgrade_leftovers(context: LayerContext, record: Mapping[str, Any]) -> None:
    """What an upgrade added beside the installation now recorded: a revision tag, and the old
    revision when the upgrade stopped before removing it."""
    control_plane = control_plane_for(context)
    tag = str(record.get("revision_tag") or "")
    if tag:
        control_plane.remove_tag(tag)
    for other in record.get("also_installed") or []:
        control_plane.remove_control_plane(str(other["version"]), str(other.get("revision", "")))


def mesh_from(result: Mapping[str, Any]) -> MeshInstall:
    return MeshInstall(
        version=str(result["version"]),
        revision=str(result.get("revision", "")),
        method=str(result["method"]),
        reused=bool(result.get("reused", False)),
        revision_tag=str(result.get("revision_tag") or ""),
    )


def install_addon_layer(context: LayerContext) -> Mapping[str, Any]:
    install_addons(context.kube, context.settings, context.progress)
    pins = addon_pins(context.settings.istio_version)
    return {
        "prometheus_image": pins.prometheus_image,
        "kiali_image": pins.kiali_image,
        "exact_pins": pins.exact,
    }


def uninstall_addon_layer(context: LayerContext, result: Mapping[str, Any]) -> None:
    uninstall_addons(context.kube, context.settings)


def install_bookinfo_layer(context: LayerContext) -> Mapping[str, Any]:
    app = install_bookinfo(context.kube, context.settings, context.progress)
    return {"namespace": app.namespace, "deployments": list(app.deployments), "services": list(app.services)}


def uninstall_bookinfo_layer(context: LayerContext, result: Mapping[str, Any]) -> None:
    delete_namespace(context.kube, str(result["namespace"]), timeout=context.settings.timeout)


def install_probe_layer(context: LayerContext) -> Mapping[str, Any]:
    inside, outside = install_probes(context.kube, context.settings, context.progress)
    return {"in_mesh": inside.namespace, "outside": outside.namespace}


def uninstall_probe_layer(context: LayerContext, result: Mapping[str, Any]) -> None:
    for namespace in (PROBE_IN_MESH_NAMESPACE, PROBE_OUTSIDE_NAMESPACE):
        delete_namespace(context.kube, namespace, timeout=context.settings.timeout)


LAYERS: Mapping[str, Layer] = {
    "mesh": Layer("mesh", (), install_mesh, uninstall_mesh),
    "addons": Layer("addons", ("mesh",), install_addon_layer, uninstall_addon_layer),
    "bookinfo": Layer("bookinfo", ("mesh",), install_bookinfo_layer, uninstall_bookinfo_layer),
    "probes": Layer("probes", ("mesh",), install_probe_layer, uninstall_probe_layer),
}
