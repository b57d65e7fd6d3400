"""Projecting a pod's volumes into directories on the lab's machine, as the kubelet mounts them.

Most lab workloads are Python objects that never read files, but a workload that runs a real
program (Locust reading its locustfiles from a ConfigMap) needs the files where it can open them.
Each pod gets one directory; each volume a sub-directory filled when its first container starts:
ConfigMap and Secret keys become files (all keys, or the ``items`` chosen, at their ``path``), an
emptyDir is an empty directory shared by the pod's containers. Other volume types are not
projected (their mounts are simply absent). The pod's directory is removed when the pod is gone.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_meshcheck.lab.errors import NotFound
from pytest_meshcheck.lab.store import GVR, Store

CONFIGMAPS = GVR.core("configmaps")
SECRETS = GVR.core("secrets")


class MountError(Exception):
    """A volume cannot be projected yet (its ConfigMap or Secret is missing): FailedMount."""


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise MountError(f"invalid path {path!r} in volume items")
    return relative


def _key_files(
    data: Mapping[str, bytes], items: list[Mapping[str, Any]] | None, what: str
) -> dict[PurePosixPath, bytes]:
    if not items:
        return {_safe_relative(key): value for key, value in data.items()}
    files = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            raise MountError(f'{what}: key "{key}" not found')
        files[_safe_relative(str(item.get("path") or key))] = data[key]
    return files


class PodVolumes:
    """The projected volumes of one pod (create per pod; ``cleanup`` when the pod is gone)."""

    def __init__(self, pod: Mapping[str, Any], store: Store) -> None:
        self._pod = pod
        self._store = store
        self._namespace = str(pod.get("metadata", {}).get("namespace", ""))
        self._root: Path | None = None
        self._projected: dict[str, Path] = {}

    def mounts(self, container: Mapping[str, Any]) -> dict[str, str]:
        """``mountPath`` -> directory for every projectable volume the container mounts."""
        volumes = {str(v.get("name")): v for v in self._pod.get("spec", {}).get("volumes") or []}
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(str(mount.get("name")))
            if volume is None:
                continue
            directory = self._project(volume)
            if directory is not None:
                sub = mount.get("subPath")
                mounts[str(mount.get("mountPath"))] = str(
                    directory / _safe_relative(str(sub)) if sub else directory
                )
        return mounts

    def _project(self, volume: Mapping[str, Any]) -> Path | None:
        name = str(volume.get("name"))
        if name in self._projected:
            return self._projected[name]
        files: dict[PurePosixPath, bytes]
        if "configMap" in volume:
            files = self._configmap_files(volume["configMap"] or {})
        elif "secret" in volume:
            files = self._secret_files(volume["secret"] or {})
        elif "emptyDir" in volume:
            files = {}
        else:
            return None
        if self._root is None:
            meta = self._pod.get("metadata", {})
            self._root = Path(
                tempfile.mkdtemp(prefix=f"lab-volumes-{self._namespace}-{meta.get('name', '')}-")
            )
        directory = self._root / name
        directory.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self._projected[name] = directory
        return directory

    def _configmap_files(self, source: Mapping[str, Any]) -> dict[PurePosixPath, bytes]:
        name = str(source.get("name", ""))
        try:
            obj = self._store.get(CONFIGMAPS, self._namespace, name)
        except NotFound:
            if source.get("optional"):
                return {}
            raise MountError(f'configmap "{name}" not found') from None
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return _key_files(data, source.get("items"), f'configmap "{name}"')

    def _secret_files(self, source: Mapping[str, Any]) -> dict[PurePosixPath, bytes]:
        name = str(source.get("secretName", ""))
        try:
            obj = self._store.get(SECRETS, self._namespace, name)
        except NotFound:
            if source.get("optional"):
                return {}
            raise MountError(f'secret "{name}" not found') from None
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return _key_files(data, source.get("items"), f'secret "{name}"')

    def cleanup(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self._projected.clear()
