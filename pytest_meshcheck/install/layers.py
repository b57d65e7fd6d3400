"""What a run installs on its cluster, in layers, each exactly once per run, even under xdist.

Layers (``mesh`` -> ``addons`` -> ``bookinfo`` -> ``probes``) are installed on first use by
whichever process needs them first. Under pytest-xdist several workers may ask at once, so each
layer is guarded by a file lock in a run directory the controller created, and its result (or its
failure) is written there as JSON for the other workers to read instead of installing again. The
process that owns the cluster removes the installed layers at the end, in reverse order, reading
the same directory, so teardown happens once and only for what this run installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_meshcheck.errors import EnvironmentProblem, InstallError, MeshcheckError
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.settings import Settings

ProgressReporter = Callable[[str, float], None]


@dataclass(frozen=True, kw_only=True)
class LayerContext:
    """What installing or removing a layer may use."""

    kube: Kube
    settings: Settings
    handle: ClusterHandle
    progress: ProgressReporter | None = None


@dataclass(frozen=True)
class Layer:
    name: str
    #: Layers that must be installed first.
    needs: tuple[str, ...]
    install: Callable[[LayerContext], Mapping[str, Any]]
    uninstall: Callable[[LayerContext, Mapping[str, Any]], None]


class LayerFailed(EnvironmentProblem):
    """A layer failed to install earlier in this run (possibly in another xdist worker)."""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class LayerStore:
    """The run directory's record of installed layers."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _result_path(self, name: str) -> Path:
        return self.run_dir / f"layer-{name}.json"

    def _error_path(self, name: str) -> Path:
        return self.run_dir / f"layer-{name}.error"

    def ensure(self, layer: Layer, context: LayerContext) -> Mapping[str, Any]:
        with _locked(self.run_dir / f"layer-{layer.name}.lock"):
            result_path = self._result_path(layer.name)
            error_path = self._error_path(layer.name)
            if result_path.exists():
                data: Mapping[str, Any] = json.loads(result_path.read_text())
                return data
            if error_path.exists():
                raise LayerFailed(
                    f"installing {layer.name} failed earlier in this run: {error_path.read_text()}"
                )
            started = time.monotonic()
            try:
                result = dict(layer.install(context))
            except MeshcheckError as exc:
                error_path.write_text(exc.message)
                raise
            except Exception as exc:
                error_path.write_text(f"{type(exc).__name__}: {exc}")
                raise InstallError(f"installing {layer.name} failed: {type(exc).__name__}: {exc}") from exc
            result["_seconds"] = round(time.monotonic() - started, 3)
            result["_order"] = len(self.installed())
            result_path.write_text(json.dumps(result, sort_keys=True))
            return result

    def update(self, name: str, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        """Change an installed layer's record (a step that changed what the layer installed, such
        as an upgrade of the mesh, says so here, so teardown removes what is really there)."""
        with _locked(self.run_dir / f"layer-{name}.lock"):
            path = self._result_path(name)
            if not path.exists():
                raise InstallError(f"layer {name} is not installed in this run; nothing to update")
            record = {**json.loads(path.read_text()), **changes}
            partial = path.with_suffix(".json.partial")
            partial.write_text(json.dumps(record, sort_keys=True))
            partial.replace(path)
            return record

    def installed(self) -> list[tuple[str, Mapping[str, Any]]]:
        """Installed layers with their results, in installation order."""
        found = []
        for path in self.run_dir.glob("layer-*.json"):
            name = path.name[len("layer-") : -len(".json")]
            found.append((name, json.loads(path.read_text())))
        found.sort(key=lambda item: int(item[1].get("_order", 0)))
        return found

    def remove_all(self, layers: Mapping[str, Layer], context: LayerContext) -> list[str]:
        """Uninstall every installed layer, newest first; returns the problems met (never raises)."""
        problems: list[str] = []
        for name, result in reversed(self.installed()):
            layer = layers.get(name)
            if layer is None:
                continue
            try:
                layer.uninstall(context, result)
                self._result_path(name).unlink(missing_ok=True)
            except Exception as exc:
                problems.append(f"removing {name}: {type(exc).__name__}: {exc}")
        return problems
