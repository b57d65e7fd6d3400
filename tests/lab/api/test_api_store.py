"""The in-process store: the API semantics every lab component relies on."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pytest_meshcheck.lab import errors
from pytest_meshcheck.lab.store import GVR, AdmissionRequest, Store

PODS = GVR.core("pods")
NAMESPACES = GVR.core("namespaces")
CONFIGMAPS = GVR.core("configmaps")
DEPLOYMENTS = GVR.parse("apps/v1/deployments")
CRDS = GVR.parse("apiextensions.k8s.io/v1/customresourcedefinitions")


@pytest.fixture
def store() -> Store:
    store = Store()
    store.create(NAMESPACES, {"metadata": {"name": "default"}})
    return store


def _deployment(name: str = "web", image: str = "nginx:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def test_gvr_parse_and_core() -> None:
    assert GVR.parse("apps/v1/deployments") == GVR("apps", "v1", "deployments")
    assert GVR.parse("v1/pods") == GVR.core("pods") == GVR("", "v1", "pods")
    with pytest.raises(ValueError, match="not a group/version/resource"):
        GVR.parse("pods")


def test_create_fills_metadata_and_get_returns_copies(store: Store) -> None:
    created = store.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "v"}}, namespace="default")
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    assert meta["generation"] == 1 and meta["namespace"] == "default"
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    fetched = store.get(CONFIGMAPS, "default", "a")
    fetched["data"]["k"] = "changed"
    assert store.get(CONFIGMAPS, "default", "a")["data"]["k"] == "v"


def test_create_errors(store: Store) -> None:
    store.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="default")
    with pytest.raises(errors.AlreadyExists, match='configmaps "a" already exists'):
        store.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="default")
    with pytest.raises(errors.Invalid) as invalid:
        store.create(CONFIGMAPS, {"metadata": {"name": "Bad_Name"}}, namespace="default")
    assert invalid.value.causes[0]["field"] == "metadata.name"
    with pytest.raises(errors.NotFound, match='namespaces "nope" not found'):
        store.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="nope")
    with pytest.raises(errors.BadRequest):
        store.create(CONFIGMAPS, {"kind": "Secret", "metadata": {"name": "b"}}, namespace="default")


def test_generate_name_and_dry_run(store: Store) -> None:
    created = store.create(CONFIGMAPS, {"metadata": {"generateName": "job-"}}, namespace="default")
    assert created["metadata"]["name"].startswith("job-") and len(created["metadata"]["name"]) == 9
    dry = store.create(CONFIGMAPS, {"metadata": {"name": "dry"}}, namespace="default", dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        store.get(CONFIGMAPS, "default", "dry")


def test_update_conflict_and_generation(store: Store) -> None:
    created = store.create(DEPLOYMENTS, _deployment(), namespace="default")
    stale = dict(created)
    changed = store.get(DEPLOYMENTS, "default", "web")
    changed["spec"]["replicas"] = 3
    updated = store.update(DEPLOYMENTS, changed)
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        store.update(DEPLOYMENTS, stale)
    labelled = store.get(DEPLOYMENTS, "default", "web")
    labelled["metadata"]["labels"]["extra"] = "yes"
    assert store.update(DEPLOYMENTS, labelled)["metadata"]["generation"] == 2


def test_status_subresource_changes_only_status(store: Store) -> None:
    store.create(DEPLOYMENTS, _deployment(), namespace="default")
    obj = store.get(DEPLOYMENTS, "default", "web")
    obj["status"] = {"replicas": 1}
    obj["spec"]["replicas"] = 5
    written = store.update(DEPLOYMENTS, obj, subresource="status")
    assert written["status"] == {"replicas": 1} and written["spec"]["replicas"] == 1
    obj = store.get(DEPLOYMENTS, "default", "web")
    obj["status"] = {"replicas": 9}
    assert store.update(DEPLOYMENTS, obj)["status"] == {"replicas": 1}


def test_scale_subresource(store: Store) -> None:
    store.create(DEPLOYMENTS, _deployment(), namespace="default")
    scale = store.get_scale(DEPLOYMENTS, "default", "web")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 4
    assert store.update(DEPLOYMENTS, scale, subresource="scale")["spec"]["replicas"] == 4
    store.patch(
        DEPLOYMENTS, "default", "web", {"spec": {"replicas": 2}}, patch_type="merge", subresource="scale"
    )
    assert store.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 2


def test_list_with_selectors(store: Store) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        store.create(CONFIGMAPS, {"metadata": {"name": name, "labels": {"tier": tier}}}, namespace="default")
    items, rv = store.list(CONFIGMAPS, "default", label_selector="tier=web")
    assert [i["metadata"]["name"] for i in items] == ["a", "c"] and rv == store.resource_version
    items, _ = store.list(CONFIGMAPS, label_selector="tier in (db),tier!=web")
    assert [i["metadata"]["name"] for i in items] == ["b"]
    items, _ = store.list(CONFIGMAPS, field_selector="metadata.name!=a,metadata.namespace=default")
    assert [i["metadata"]["name"] for i in items] == ["b", "c"]
    with pytest.raises(errors.BadRequest):
        store.list(CONFIGMAPS, label_selector="tier in (")


def test_patch_flavours(store: Store) -> None:
    store.create(DEPLOYMENTS, _deployment(), namespace="default")
    store.patch(
        DEPLOYMENTS,
        "default",
        "web",
        [
            {"op": "replace", "path": "/spec/replicas", "value": 2},
            {"op": "add", "path": "/metadata/labels/x", "value": "1"},
        ],
        patch_type="json",
    )
    store.patch(
        DEPLOYMENTS, "default", "web", {"metadata": {"labels": {"x": None, "y": "2"}}}, patch_type="merge"
    )
    strategic = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:2", "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                }
            }
        }
    }
    patched = store.patch(DEPLOYMENTS, "default", "web", strategic, patch_type="strategic")
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["image"] == "nginx:2" and containers[0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    assert patched["spec"]["replicas"] == 2 and patched["metadata"]["labels"] == {"app": "web", "y": "2"}
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    patched = store.patch(DEPLOYMENTS, "default", "web", delete, patch_type="strategic")
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["app"]
    with pytest.raises(errors.Invalid):
        store.patch(
            DEPLOYMENTS,
            "default",
            "web",
            [{"op": "test", "path": "/spec/replicas", "value": 9}],
            patch_type="json",
        )


def test_server_side_apply_ownership_and_conflicts(store: Store) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "1", "b": "2"},
    }
    created = store.patch(CONFIGMAPS, "default", "cfg", config, patch_type="apply", field_manager="alice")
    assert created["data"] == {"a": "1", "b": "2"}
    assert created["metadata"]["managedFields"][0]["manager"] == "alice"
    with pytest.raises(errors.Conflict, match='conflict with "alice"'):
        store.patch(
            CONFIGMAPS,
            "default",
            "cfg",
            {**config, "data": {"a": "9"}},
            patch_type="apply",
            field_manager="bob",
        )
    forced = store.patch(
        CONFIGMAPS,
        "default",
        "cfg",
        {**config, "data": {"a": "9"}},
        patch_type="apply",
        field_manager="bob",
        force=True,
    )
    assert forced["data"] == {"a": "9", "b": "2"}
    again = store.patch(
        CONFIGMAPS,
        "default",
        "cfg",
        {**config, "data": {"b": "2"}},
        patch_type="apply",
        field_manager="alice",
    )
    assert again["data"] == {"a": "9", "b": "2"}
    dropped = store.patch(
        CONFIGMAPS, "default", "cfg", {**config, "data": {}}, patch_type="apply", field_manager="alice"
    )
    assert dropped["data"] == {"a": "9"}


def test_finalizers_hold_deletion(store: Store) -> None:
    store.create(
        CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}}, namespace="default"
    )
    marked = store.delete(CONFIGMAPS, "default", "held")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get(CONFIGMAPS, "default", "held")["metadata"]["deletionTimestamp"]
    store.patch(CONFIGMAPS, "default", "held", {"metadata": {"finalizers": None}}, patch_type="merge")
    with pytest.raises(errors.NotFound):
        store.get(CONFIGMAPS, "default", "held")
    with pytest.raises(errors.NotFound):
        store.delete(CONFIGMAPS, "default", "held")


def test_terminating_namespace_refuses_content(store: Store) -> None:
    store.create(NAMESPACES, {"metadata": {"name": "doomed"}})
    deleted = store.delete(NAMESPACES, None, "doomed")
    assert deleted["status"]["phase"] == "Terminating"
    with pytest.raises(errors.Forbidden, match="because it is being terminated"):
        store.create(CONFIGMAPS, {"metadata": {"name": "late"}}, namespace="doomed")
    store.update(NAMESPACES, {**deleted, "spec": {"finalizers": []}}, subresource="finalize")
    with pytest.raises(errors.NotFound):
        store.get(NAMESPACES, None, "doomed")


def test_watch_initial_events_changes_and_selector_transitions(store: Store) -> None:
    store.create(CONFIGMAPS, {"metadata": {"name": "a", "labels": {"w": "1"}}}, namespace="default")
    watch = store.watch(CONFIGMAPS, "default", label_selector="w=1")
    first = watch.next(5)
    assert first is not None and first.type == "ADDED" and first.object["metadata"]["name"] == "a"
    store.patch(CONFIGMAPS, "default", "a", {"data": {"x": "y"}}, patch_type="merge")
    store.patch(CONFIGMAPS, "default", "a", {"metadata": {"labels": {"w": "0"}}}, patch_type="merge")
    store.create(CONFIGMAPS, {"metadata": {"name": "b", "labels": {"w": "1"}}}, namespace="default")
    store.delete(CONFIGMAPS, "default", "b")
    seen = []
    for _ in range(4):
        event = watch.next(5)
        assert event is not None
        seen.append((event.type, event.object["metadata"]["name"]))
    assert seen == [("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "b"), ("DELETED", "b")]
    assert watch.next(0.05) is None
    watch.close()
    assert watch.closed and watch.next(1) is None


def test_watch_from_resource_version_and_gone(store: Store) -> None:
    created = store.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="default")
    store.patch(CONFIGMAPS, "default", "a", {"data": {"k": "1"}}, patch_type="merge")
    watch = store.watch(CONFIGMAPS, resource_version=created["metadata"]["resourceVersion"])
    event = watch.next(5)
    assert event is not None and event.type == "MODIFIED" and event.object["data"] == {"k": "1"}
    watch.close()
    from pytest_meshcheck.lab import store as store_module

    small = Store()
    small._history = store_module.collections.deque(maxlen=2)
    small.create(NAMESPACES, {"metadata": {"name": "default"}})
    for i in range(5):
        small.create(CONFIGMAPS, {"metadata": {"name": f"c{i}"}}, namespace="default")
    with pytest.raises(errors.Gone, match="too old resource version"):
        small.watch(CONFIGMAPS, resource_version="1")


def test_watch_wakes_blocked_reader_from_another_thread(store: Store) -> None:
    watch = store.watch(CONFIGMAPS, "default", resource_version=store.resource_version)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(getattr(watch.next(10), "type", "none")))
    reader.start()
    store.create(CONFIGMAPS, {"metadata": {"name": "wake"}}, namespace="default")
    reader.join(10)
    assert got == ["ADDED"]


def test_admission_plugins_mutate_and_reject(store: Store) -> None:
    def add_label(request: AdmissionRequest) -> dict[str, Any] | None:
        if request.operation == "CREATE" and request.object is not None:
            request.object["metadata"].setdefault("labels", {})["admitted"] = "true"
            return request.object
        return None

    def forbid_secret_names(request: AdmissionRequest) -> None:
        if request.name.startswith("forbidden"):
            raise errors.Forbidden("denied by policy")

    store.add_admission("labeller", mutate=add_label, validate=forbid_secret_names)
    created = store.create(CONFIGMAPS, {"metadata": {"name": "ok"}}, namespace="default")
    assert created["metadata"]["labels"] == {"admitted": "true"}
    with pytest.raises(errors.Forbidden, match="denied by policy"):
        store.create(CONFIGMAPS, {"metadata": {"name": "forbidden-1"}}, namespace="default")
    store.remove_admission("labeller")
    assert (
        "labels"
        not in store.create(CONFIGMAPS, {"metadata": {"name": "plain"}}, namespace="default")["metadata"]
    )


def test_crd_serves_custom_resources_and_deletion_removes_them(store: Store) -> None:
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}],
        },
    }
    stored = store.create(CRDS, crd)
    assert {c["type"] for c in stored["status"]["conditions"]} == {"NamesAccepted", "Established"}
    widgets = GVR("example.com", "v1", "widgets")
    assert store.kinds().get(widgets).short_names == ("wd",)
    store.create(
        widgets,
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        namespace="default",
    )
    assert store.get(widgets, "default", "w")["kind"] == "Widget"
    with pytest.raises(errors.Invalid):
        store.create(CRDS, {"metadata": {"name": "bad.example.com"}, "spec": {"group": "example.com"}})
    store.delete(CRDS, None, "widgets.example.com")
    assert store.kinds().find(widgets) is None
    assert not [o for k, o in store.all_objects() if k.kind == "Widget"]


def test_bound_pods_are_deleted_gracefully(store: Store) -> None:
    spec = {
        "nodeName": "node-1",
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "c", "image": "i"}],
    }
    store.create(PODS, {"metadata": {"name": "bound"}, "spec": spec}, namespace="default")
    marked = store.delete(PODS, "default", "bound")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 5 and marked["metadata"]["deletionTimestamp"]
    assert store.get(PODS, "default", "bound")["metadata"]["deletionTimestamp"]
    store.delete(PODS, "default", "bound", grace_period_seconds=0)
    with pytest.raises(errors.NotFound):
        store.get(PODS, "default", "bound")
    store.create(
        PODS,
        {"metadata": {"name": "unbound"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        namespace="default",
    )
    store.delete(PODS, "default", "unbound")
    with pytest.raises(errors.NotFound):
        store.get(PODS, "default", "unbound")


def test_workload_validation_and_immutable_selector(store: Store) -> None:
    mismatched = _deployment("m")
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(errors.Invalid, match="selector` does not match template `labels`"):
        store.create(DEPLOYMENTS, mismatched, namespace="default")
    no_image = _deployment("n")
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    with pytest.raises(errors.Invalid) as missing:
        store.create(DEPLOYMENTS, no_image, namespace="default")
    assert missing.value.causes[0]["field"] == "spec.template.spec.containers[0].image"
    store.create(DEPLOYMENTS, _deployment("k"), namespace="default")
    moved = {
        "spec": {
            "selector": {"matchLabels": {"app": "k", "x": "y"}},
            "template": {"metadata": {"labels": {"x": "y"}}},
        }
    }
    with pytest.raises(errors.Invalid, match="field is immutable"):
        store.patch(DEPLOYMENTS, "default", "k", moved, patch_type="strategic")


def test_defaults_apply_on_every_write(store: Store) -> None:
    store.create(DEPLOYMENTS, _deployment("d"), namespace="default")
    patched = store.patch(DEPLOYMENTS, "default", "d", {"spec": {"strategy": None}}, patch_type="strategic")
    assert patched["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert patched["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("gvr", "name", "valid"),
    [
        (GVR.core("services"), "1st-service", False),
        (GVR.core("services"), "svc-1", True),
        (GVR.core("configmaps"), "1st.config", True),
        (GVR.core("configmaps"), "-bad", False),
        (GVR.parse("rbac.authorization.k8s.io/v1/roles"), "system:controller", True),
    ],
)
def test_name_rules_per_resource(store: Store, gvr: GVR, name: str, valid: bool) -> None:
    body = (
        {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}
        if gvr.resource == "services"
        else {"metadata": {"name": name}}
    )
    if valid:
        assert store.create(gvr, body, namespace="default")["metadata"]["name"] == name
    else:
        with pytest.raises(errors.Invalid):
            store.create(gvr, body, namespace="default")


def test_concurrent_writers_never_lose_updates(store: Store) -> None:
    store.create(
        GVR.core("configmaps"), {"metadata": {"name": "counter"}, "data": {"n": "0"}}, namespace="default"
    )

    def bump(times: int) -> None:
        for _ in range(times):
            while True:
                current = store.get(GVR.core("configmaps"), "default", "counter")
                current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                try:
                    store.update(GVR.core("configmaps"), current)
                    break
                except errors.Conflict:
                    continue

    workers = [threading.Thread(target=bump, args=(50,)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert store.get(GVR.core("configmaps"), "default", "counter")["data"]["n"] == "300"


@pytest.mark.parametrize(
    ("patch_type", "patch", "applied"),
    [
        ("merge", {"metadata": {"annotations": {"restartedAt": "now"}}}, None),
        ("strategic", {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}, None),
        ("json", [{"op": "add", "path": "/metadata/annotations", "value": {"restartedAt": "now"}}], None),
        ("apply", None, {"metadata": {"annotations": {"restartedAt": "now"}}}),
    ],
    ids=["merge", "strategic", "json", "apply"],
)
def test_a_patch_that_lost_a_race_is_retried_unless_it_pinned_a_resource_version(
    store: Store, patch_type: str, patch: Any, applied: Any
) -> None:
    """Like the API server's patcher: a patch without a resourceVersion (what ``kubectl rollout
    restart`` sends) is re-applied to the object a concurrent writer just changed; one that carries
    a resourceVersion is a precondition, so the same race is a Conflict."""
    store.create(DEPLOYMENTS, _deployment(), namespace="default")
    raced: list[str] = []
    racing = threading.Event()

    def concurrent_writer(request: AdmissionRequest) -> None:
        if request.operation == "UPDATE" and request.name == "web" and not racing.is_set():
            racing.set()  # once per patch: the writer's own update passes through here too
            current = store.get(DEPLOYMENTS, "default", "web")
            current["metadata"].setdefault("labels", {})["raced"] = f"yes-{len(raced)}"
            raced.append(store.update(DEPLOYMENTS, current)["metadata"]["resourceVersion"])

    store.add_admission("concurrent-writer", mutate=concurrent_writer)
    if patch_type == "apply":
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, **applied}
        patched = store.patch(
            DEPLOYMENTS, "default", "web", body, patch_type="apply", field_manager="test", force=True
        )
    else:
        patched = store.patch(DEPLOYMENTS, "default", "web", patch, patch_type=patch_type)
    assert raced, "the concurrent write happened during the patch"
    assert patched["metadata"]["labels"]["raced"] == "yes-0", "the patch was re-applied to the new object"
    assert int(patched["metadata"]["resourceVersion"]) > int(raced[0])

    racing.clear()
    pinned_rv = store.get(DEPLOYMENTS, "default", "web")["metadata"]["resourceVersion"]
    pinned = {"metadata": {"resourceVersion": pinned_rv, "annotations": {"again": "yes"}}}
    with pytest.raises(errors.Conflict):
        store.patch(DEPLOYMENTS, "default", "web", pinned, patch_type="merge")
    assert len(raced) == 2, "the second patch raced as well"
