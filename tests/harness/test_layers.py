"""Install layers: once per run across processes, failures shared, removal newest first."""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.layers import Layer, LayerContext, LayerFailed, LayerStore
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.settings import default_settings


def context(journal: Path) -> LayerContext:
    handle = ClusterHandle(provider="fake", name="x", kubeconfig=journal, details={})
    return LayerContext(kube=None, settings=default_settings(), handle=handle)  # type: ignore[arg-type]


def counting_layer(name: str, journal: Path, *, fail: bool = False) -> Layer:
    def install(ctx: LayerContext) -> Mapping[str, Any]:
        with journal.open("a") as fh:
            fh.write(f"install {name}\n")
        if fail:
            raise RuntimeError("the chart repository answered 503")
        return {"name": name}

    def uninstall(ctx: LayerContext, result: Mapping[str, Any]) -> None:
        with journal.open("a") as fh:
            fh.write(f"uninstall {result['name']}\n")

    return Layer(name, (), install, uninstall)


def _worker(run_dir: str, journal: str) -> None:
    store = LayerStore(Path(run_dir))
    store.ensure(counting_layer("mesh", Path(journal)), context(Path(journal)))


def test_concurrent_processes_install_a_layer_once(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_worker, args=(str(tmp_path / "run"), str(journal))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert journal.read_text().splitlines() == ["install mesh"]


def test_a_failed_layer_is_not_retried_by_others(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    store = LayerStore(tmp_path / "run")
    layer = counting_layer("mesh", journal, fail=True)
    with pytest.raises(InstallError, match=r"chart repository answered 503"):
        store.ensure(layer, context(journal))
    with pytest.raises(LayerFailed, match=r"failed earlier in this run.*503"):
        store.ensure(layer, context(journal))
    assert journal.read_text().splitlines() == ["install mesh"]


def test_removal_is_newest_first_and_only_what_was_installed(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    store = LayerStore(tmp_path / "run")
    layers = {name: counting_layer(name, journal) for name in ("mesh", "addons", "bookinfo")}
    store.ensure(layers["mesh"], context(journal))
    store.ensure(layers["bookinfo"], context(journal))
    assert store.remove_all(layers, context(journal)) == []
    assert journal.read_text().splitlines() == [
        "install mesh",
        "install bookinfo",
        "uninstall bookinfo",
        "uninstall mesh",
    ]
    assert store.installed() == []
