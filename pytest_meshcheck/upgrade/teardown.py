"""Removing what an upgrade added when the run ends (for clusters the run does not destroy)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_meshcheck.install.layers import LayerContext
from pytest_meshcheck.resources import home_dir
from pytest_meshcheck.upgrade.control_plane import ControlPlane


def istioctl_getter(context: LayerContext) -> Any:
    """``version -> istioctl path``: the run's own binary for the version it was given for, a
    downloaded, checksum-verified release for any other."""
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
    return ControlPlane(
        context.kube,
        context.settings,
        kubeconfig=context.handle.kubeconfig,
        context=context.handle.context,
        istioctl_for=istioctl_getter(context),
        progress=context.progress,
    )


def remove_upgrade_leftovers(context: LayerContext, record: Mapping[str, Any]) -> None:
    control_plane = control_plane_for(context)
    tag = str(record.get("revision_tag") or "")
    if tag:
        control_plane.remove_tag(tag)
    for other in record.get("also_installed") or []:
        control_plane.remove_control_plane(str(other["version"]), str(other.get("revision", "")))
