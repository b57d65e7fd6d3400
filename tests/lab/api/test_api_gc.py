"""The garbage collector and namespace controller, driven one sweep at a time."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_meshcheck.lab import errors
from pytest_meshcheck.lab.gc import GarbageCollector
from pytest_meshcheck.lab.store import GVR, Store

CONFIGMAPS = GVR.core("configmaps")
NAMESPACES = GVR.core("namespaces")


@pytest.fixture
def store() -> Store:
    store = Store()
    store.create(NAMESPACES, {"metadata": {"name": "default"}})
    return store


def _owned(store: Store, name: str, owner: dict[str, Any]) -> dict[str, Any]:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    return store.create(
        CONFIGMAPS, {"metadata": {"name": name, "ownerReferences": [ref]}}, namespace="default"
    )


def _names(store: Store) -> list[str]:
    return [o["metadata"]["name"] for o in store.list(CONFIGMAPS, "default")[0]]


def test_background_deletes_dependents_of_a_deleted_owner(store: Store) -> None:
    collector = GarbageCollector(store)
    owner = store.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace="default")
    child = _owned(store, "child", owner)
    _owned(store, "grandchild", child)
    store.delete(CONFIGMAPS, "default", "owner")
    collector.sweep()
    assert _names(store) == ["grandchild"]
    collector.sweep()
    assert _names(store) == []


def test_foreground_waits_for_dependents(store: Store) -> None:
    collector = GarbageCollector(store)
    owner = store.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace="default")
    _owned(store, "child", owner)
    marked = store.delete(CONFIGMAPS, "default", "owner", propagation="Foreground")
    assert marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    collector.sweep()
    assert store.get(CONFIGMAPS, "default", "child")["metadata"]["deletionTimestamp"]
    collector.sweep()
    assert _names(store) == ["owner"]  # the dependent went first
    collector.sweep()
    assert _names(store) == []


def test_orphan_keeps_dependents_and_drops_the_reference(store: Store) -> None:
    collector = GarbageCollector(store)
    owner = store.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace="default")
    _owned(store, "child", owner)
    store.delete(CONFIGMAPS, "default", "owner", propagation="Orphan")
    collector.sweep()
    assert _names(store) == ["child"]
    assert not store.get(CONFIGMAPS, "default", "child")["metadata"].get("ownerReferences")


def test_namespace_termination_waits_for_finalized_content(store: Store) -> None:
    collector = GarbageCollector(store)
    store.create(NAMESPACES, {"metadata": {"name": "gone"}})
    store.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="gone")
    store.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["x/y"]}}, namespace="gone")
    store.delete(NAMESPACES, None, "gone")
    collector.sweep()
    assert [o["metadata"]["name"] for o in store.list(CONFIGMAPS, "gone")[0]] == ["held"]
    collector.sweep()
    assert store.get(NAMESPACES, None, "gone")["status"]["phase"] == "Terminating"
    store.patch(CONFIGMAPS, "gone", "held", {"metadata": {"finalizers": None}}, patch_type="merge")
    collector.sweep()
    with pytest.raises(errors.NotFound):
        store.get(NAMESPACES, None, "gone")


def test_running_collector_acts_on_changes(store: Store) -> None:
    collector = GarbageCollector(store)
    collector.start()
    try:
        owner = store.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace="default")
        _owned(store, "child", owner)
        store.delete(CONFIGMAPS, "default", "owner")
        assert collector.wait_for_sweep(10)
        assert _names(store) == []
    finally:
        collector.stop()
