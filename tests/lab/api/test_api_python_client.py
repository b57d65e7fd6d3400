"""The Python kubernetes client against the lab API server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from lab_api_support import Lab

from pytest_meshcheck.lab.store import GVR


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "img:1", "ports": [{"containerPort": 8080}]}]
                },
            },
        },
    }


def test_discovery_lists_groups(api_client: client.ApiClient) -> None:
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
    } <= groups
    resources = {r.name for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert {"pods", "pods/log", "pods/exec", "services/proxy", "namespaces"} <= resources


def test_crud_generate_name_and_dry_run(api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        ns, {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}}
    )
    name = created.metadata.name
    assert name.startswith("cfg-") and created.metadata.uid
    assert core.read_namespaced_config_map(name, ns).data == {"a": "1"}
    created.data["a"] = "2"
    assert core.replace_namespaced_config_map(name, ns, created).data == {"a": "2"}
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}}, dry_run="All")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("dry", ns)
    assert missing.value.status == 404
    core.delete_namespaced_config_map(name, ns)
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == []


def test_conflict_on_stale_resource_version(api_client: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api_client)
    first = apps.create_namespaced_deployment(ns, _deployment("web"))
    fresh = apps.read_namespaced_deployment("web", ns)
    fresh.spec.replicas = 2
    apps.replace_namespaced_deployment("web", ns, fresh)
    first.spec.replicas = 5
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("web", ns, first)
    assert conflict.value.status == 409
    assert "the object has been modified" in conflict.value.body
    assert apps.read_namespaced_deployment("web", ns).metadata.generation == 2


def test_errors_are_status_objects(api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", ns)
    assert missing.value.status == 404 and '"reason":"NotFound"' in missing.value.body
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    assert duplicate.value.status == 409 and "already exists" in duplicate.value.body
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Not_Valid"}})
    assert invalid.value.status == 422 and "metadata.name" in invalid.value.body


def test_patch_types_through_the_client(api_client: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(ns, _deployment("pt"))
    apps.patch_namespaced_deployment("pt", ns, [{"op": "replace", "path": "/spec/replicas", "value": 2}])
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "app", "env": [{"name": "E", "value": "1"}]}]}}
        }
    }
    patched = apps.patch_namespaced_deployment("pt", ns, patch)  # strategic merge by default
    container = patched.spec.template.spec.containers[0]
    assert patched.spec.replicas == 2 and container.image == "img:1" and container.env[0].name == "E"
    api_client.set_default_header("Content-Type", "application/merge-patch+json")
    try:
        merged = apps.patch_namespaced_deployment("pt", ns, {"metadata": {"labels": {"m": "1"}}})
    finally:
        api_client.default_headers.pop("Content-Type", None)
    assert merged.metadata.labels == {"app": "pt", "m": "1"}
    scaled = apps.patch_namespaced_deployment_scale("pt", ns, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    status = apps.patch_namespaced_deployment_status(
        "pt", ns, {"status": {"readyReplicas": 1, "replicas": 4}}
    )
    assert status.status.ready_replicas == 1 and status.spec.replicas == 4


def test_server_side_apply_with_dynamic_client(api_client: client.ApiClient, ns: str) -> None:
    dyn = dynamic.DynamicClient(api_client)
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa", "namespace": ns},
        "data": {"k": "v"},
    }
    first = configmaps.server_side_apply(body=body, field_manager="alice")
    assert first.data.k == "v"
    with pytest.raises(dynamic.exceptions.ConflictError):
        configmaps.server_side_apply(body={**body, "data": {"k": "other"}}, field_manager="bob")
    forced = configmaps.server_side_apply(
        body={**body, "data": {"k": "other"}}, field_manager="bob", force_conflicts=True
    )
    assert forced.data.k == "other"
    managers = {m.manager for m in forced.metadata.managedFields}
    assert "bob" in managers


def test_selectors(api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"tier": tier}}})
    web = core.list_namespaced_config_map(ns, label_selector="tier=web")
    assert [i.metadata.name for i in web.items] == ["a", "c"]
    assert int(web.metadata.resource_version) > 0
    not_web = core.list_namespaced_config_map(ns, label_selector="tier notin (web)")
    assert [i.metadata.name for i in not_web.items] == ["b"]
    by_name = core.list_namespaced_config_map(ns, field_selector="metadata.name=c")
    assert [i.metadata.name for i in by_name.items] == ["c"]
    everywhere = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={ns},metadata.name!=a"
    )
    assert sorted(i.metadata.name for i in everywhere.items) == ["b", "c"]


def test_watch_stream_sees_changes(api_client: client.ApiClient, lab: Lab, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    listed = core.list_namespaced_config_map(ns)
    seen: list[tuple[str, str]] = []

    def produce() -> None:
        lab.wait_until(lambda: bool(lab.store._watches), message="the client's watch")
        core.create_namespaced_config_map(ns, {"metadata": {"name": "w1"}})
        core.patch_namespaced_config_map("w1", ns, {"data": {"a": "b"}})
        core.delete_namespaced_config_map("w1", ns)

    producer = threading.Thread(target=produce)
    producer.start()
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=listed.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            stream.stop()
    producer.join(10)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_with_expired_resource_version_is_410(api_client: client.ApiClient, lab: Lab, ns: str) -> None:
    from pytest_meshcheck.lab import store as store_module

    history = lab.store._history
    lab.store._history = store_module.collections.deque(maxlen=1)
    try:
        for i in range(3):
            lab.store.create(GVR.core("configmaps"), {"metadata": {"name": f"x{i}"}}, namespace=ns)
        with pytest.raises(ApiException) as gone:
            client.CoreV1Api(api_client).list_namespaced_config_map(
                ns, watch=True, resource_version="1", timeout_seconds=1
            )
        assert gone.value.status == 410
    finally:
        lab.store._history = history


def test_garbage_collection_background_and_foreground(
    api_client: client.ApiClient, lab: Lab, ns: str
) -> None:
    apps = client.AppsV1Api(api_client)
    owner = apps.create_namespaced_deployment(ns, _deployment("owner"))
    ref = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "owner",
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": True,
    }
    rs = _deployment("owner-rs")
    rs["kind"] = "ReplicaSet"
    rs["metadata"]["ownerReferences"] = [ref]
    rs_obj = apps.create_namespaced_replica_set(ns, rs)
    pod_ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner-rs", "uid": rs_obj.metadata.uid}
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "owned-pod", "ownerReferences": [pod_ref]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    )
    apps.delete_namespaced_deployment("owner", ns, propagation_policy="Foreground")
    lab.wait_until(lambda: not core.list_namespaced_pod(ns).items, message="foreground deletion of the pod")
    lab.wait_until(lambda: not apps.list_namespaced_deployment(ns).items, message="the owner to go")
    assert not apps.list_namespaced_replica_set(ns).items

    parent = core.create_namespaced_config_map(ns, {"metadata": {"name": "parent"}})
    child_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent.metadata.uid}
    core.create_namespaced_config_map(ns, {"metadata": {"name": "kid", "ownerReferences": [child_ref]}})
    core.delete_namespaced_config_map("parent", ns)
    lab.wait_until(
        lambda: not core.list_namespaced_config_map(ns).items, message="background deletion of the child"
    )


def test_finalizers_and_namespace_termination(api_client: client.ApiClient, lab: Lab) -> None:
    core = client.CoreV1Api(api_client)
    ns = lab.namespace("fin")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.delete_namespace(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"
    lab.wait_until(
        lambda: core.read_namespaced_config_map("held", ns).metadata.deletion_timestamp is not None
    )
    assert core.read_namespace(ns).status.phase == "Terminating"
    core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})

    def namespace_gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    lab.wait_until(namespace_gone, message="the namespace to finish terminating")


def test_custom_resources_namespaced_and_cluster_scoped(api_client: client.ApiClient, ns: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    for scope, plural, kind in (("Namespaced", "things", "Thing"), ("Cluster", "realms", "Realm")):
        ext.create_custom_resource_definition(
            {
                "metadata": {"name": f"{plural}.lab.example"},
                "spec": {
                    "group": "lab.example",
                    "scope": scope,
                    "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        "lab.example",
        "v1",
        ns,
        "things",
        {"apiVersion": "lab.example/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"n": 1}},
    )
    custom.create_cluster_custom_object(
        "lab.example",
        "v1",
        "realms",
        {"apiVersion": "lab.example/v1", "kind": "Realm", "metadata": {"name": "r"}},
    )
    assert custom.get_namespaced_custom_object("lab.example", "v1", ns, "things", "t")["spec"] == {"n": 1}
    assert [
        r["metadata"]["name"]
        for r in custom.list_cluster_custom_object("lab.example", "v1", "realms")["items"]
    ] == ["r"]
    patched = custom.patch_namespaced_custom_object(
        "lab.example", "v1", ns, "things", "t", {"spec": {"n": 2}}
    )
    assert patched["spec"] == {"n": 2}
    dyn = dynamic.DynamicClient(api_client)
    realm = dyn.resources.get(api_version="lab.example/v1", kind="Realm")
    assert realm.namespaced is False and realm.name == "realms"
    assert [
        t.metadata.name
        for t in dyn.resources.get(api_version="lab.example/v1", kind="Thing").get(namespace=ns).items
    ] == ["t"]


def test_list_pagination(api_client: client.ApiClient, lab: Lab, ns: str) -> None:
    for i in range(7):
        lab.store.create(GVR.core("configmaps"), {"metadata": {"name": f"page-{i}"}}, namespace=ns)
    core = client.CoreV1Api(api_client)
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        names += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and names == [f"page-{i}" for i in range(7)]
    assert len(lab.kubectl("-n", ns, "get", "cm", "--chunk-size=2", "-o", "name").stdout.split()) == 7
