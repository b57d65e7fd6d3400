"""Files a container sees under its ConfigMap volume mounts, read the way the kubelet projects them.

A real Prometheus or Kiali reads its configuration from a file the kubelet wrote from a ConfigMap.
The lab has no container filesystems, so the addons resolve the path through the pod spec (volume
mount -> volume -> ConfigMap key, honouring ``items`` and ``subPath``) and read the ConfigMap from
the lab's store. A missing ConfigMap or key fails the same way the container would: it cannot read
its config file, and says which file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any, Protocol

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.resources import GVR

CONFIGMAPS = GVR.core("configmaps")


class ObjectReader(Protocol):
    """The part of the lab's store the addons read (``lab/store.py`` satisfies it)."""

    def get(self, gvr: GVR, namespace: str | None, name: str) -> dict[str, Any]: ...

    def list(
        self, gvr: GVR, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]: ...


class MountedFileMissing(FileNotFoundError):
    """The container's config file does not exist (no such mount, ConfigMap or key)."""


def store_of(ctx: WorkloadContext) -> ObjectReader:
    """The lab's object store from the context; a workload that needs it cannot run without it."""
    store = ctx.services.get("store")
    if store is None or not hasattr(store, "get") or not hasattr(store, "list"):
        raise RuntimeError(
            f"{ctx.container_name}: the lab gave this container no API access (services['store'] is unset)"
        )
    return store  # type: ignore[no-any-return]


def read_mounted_file(ctx: WorkloadContext, path: str, store: ObjectReader | None = None) -> str:
    """The text of ``path`` as the container would read it from a ConfigMap volume."""
    reader = store if store is not None else store_of(ctx)
    spec: Mapping[str, Any] = ctx.pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    container = next((c for c in containers if c.get("name") == ctx.container_name), None)
    if container is None:
        raise MountedFileMissing(f"open {path}: no such file or directory (container not in the pod spec)")
    volumes = {volume.get("name"): volume for volume in spec.get("volumes") or []}
    wanted = posixpath.normpath(path)
    for mount in container.get("volumeMounts") or []:
        mount_path = posixpath.normpath(str(mount.get("mountPath") or ""))
        sub_path = str(mount.get("subPath") or "")
        if sub_path:
            if wanted != mount_path:
                continue
            relative = sub_path
        else:
            if not wanted.startswith(mount_path.rstrip("/") + "/"):
                continue
            relative = wanted[len(mount_path.rstrip("/")) + 1 :]
        volume = volumes.get(mount.get("name"))
        source = (volume or {}).get("configMap")
        if not source:
            continue
        return _read_configmap_file(reader, ctx.namespace, source, relative, path)
    raise MountedFileMissing(f"open {path}: no such file or directory (no ConfigMap volume mounted there)")


def _read_configmap_file(
    reader: ObjectReader, namespace: str, source: Mapping[str, Any], relative: str, path: str
) -> str:
    name = str(source.get("name") or "")
    try:
        configmap = reader.get(CONFIGMAPS, namespace, name)
    except Exception as exc:
        raise MountedFileMissing(f"open {path}: configmap {namespace}/{name}: {exc}") from exc
    data: Mapping[str, str] = configmap.get("data") or {}
    items = source.get("items")
    key = relative
    if items:
        key = next((str(item.get("key")) for item in items if item.get("path") == relative), "")
    if key not in data:
        raise MountedFileMissing(
            f"open {path}: no such file or directory (configmap {name} has no key {key!r})"
        )
    return data[key]
