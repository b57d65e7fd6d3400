from __future__ import annotations

from typing import Any

from pytest_meshcheck.lab.cluster import LabCore
from pytest_meshcheck.lab.controllers.deployment import template_hash
from pytest_meshcheck.lab.store import GVR

from .conftest import DEPLOYMENTS, PODS, wait_for
from .test_core_rollout import deployment

REPLICASETS = GVR.parse("apps/v1/replicasets")
EVENTS = GVR.core("events")


def status(core: LabCore, name: str) -> dict[str, Any]:
    return core.store.get(DEPLOYMENTS, "default", name).get("status") or {}


def complete(core: LabCore, name: str, replicas: int) -> bool:
    obj = core.store.get(DEPLOYMENTS, "default", name)
    st = obj.get("status") or {}
    return (
        st.get("observedGeneration") == obj["metadata"]["generation"]
        and st.get("updatedReplicas") == replicas
        and st.get("replicas") == replicas
        and st.get("availableReplicas") == replicas
    )


def replica_sets(core: LabCore, app: str) -> dict[str, dict[str, Any]]:
    items, _ = core.store.list(REPLICASETS, "default")
    return {rs["metadata"]["name"]: rs for rs in items if rs["metadata"]["name"].startswith(f"{app}-")}


def set_template(core: LabCore, name: str, change: Any) -> None:
    obj = core.store.get(DEPLOYMENTS, "default", name)
    change(obj["spec"]["template"])
    core.store.update(DEPLOYMENTS, obj)


def test_rollout_restart_makes_a_new_replica_set_and_retires_the_old(core: LabCore) -> None:
    core.store.create(DEPLOYMENTS, deployment("roll", "example.test/echo:1", replicas=3))
    wait_for("first rollout", lambda: complete(core, "roll", 3))
    (first,) = replica_sets(core, "roll")

    def restart(template: dict[str, Any]) -> None:
        template["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = (
            "2026-01-01T00:00:00Z"
        )

    set_template(core, "roll", restart)
    wait_for("second rollout", lambda: complete(core, "roll", 3) and len(replica_sets(core, "roll")) == 2)
    sets = replica_sets(core, "roll")
    assert sets[first]["spec"]["replicas"] == 0
    (second,) = set(sets) - {first}
    assert sets[second]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    pods, _ = core.store.list(PODS, "default", label_selector="app=roll")
    wait_for(
        "old pods gone",
        lambda: all(
            p["metadata"]["name"].startswith(second)
            for p in core.store.list(PODS, "default", label_selector="app=roll")[0]
        ),
    )
    assert pods
    events, _ = core.store.list(EVENTS, "default")
    messages = [e["message"] for e in events if e["reason"] == "ScalingReplicaSet"]
    assert f"Scaled up replica set {second} from 0 to 1" in messages
    assert any(m.startswith(f"Scaled down replica set {first} from 3 to ") for m in messages)


def test_set_image_to_unknown_image_keeps_old_pods_serving(core: LabCore) -> None:
    core.store.create(DEPLOYMENTS, deployment("stuck", "example.test/echo:1", replicas=2))
    wait_for("first rollout", lambda: complete(core, "stuck", 2))

    def bad_image(template: dict[str, Any]) -> None:
        template["spec"]["containers"][0]["image"] = "example.test/nope:2"

    set_template(core, "stuck", bad_image)

    def pull_backoff() -> bool:
        pods, _ = core.store.list(PODS, "default", label_selector="app=stuck")
        reasons = [
            ((p.get("status") or {}).get("containerStatuses") or [{}])[0]
            .get("state", {})
            .get("waiting", {})
            .get("reason")
            for p in pods
        ]
        return "ImagePullBackOff" in reasons

    wait_for("ImagePullBackOff", pull_backoff)
    st = status(core, "stuck")
    assert st["availableReplicas"] == 2
    assert st["updatedReplicas"] == 1
    conditions = {c["type"]: c["reason"] for c in st["conditions"]}
    assert conditions["Available"] == "MinimumReplicasAvailable"
    assert conditions["Progressing"] in ("ReplicaSetUpdated", "NewReplicaSetCreated")


def test_recreate_strategy_scales_old_to_zero_first(core: LabCore) -> None:
    core.store.create(
        DEPLOYMENTS, deployment("recreate", "example.test/echo:1", replicas=2, strategy={"type": "Recreate"})
    )
    wait_for("first rollout", lambda: complete(core, "recreate", 2))

    def new_env(template: dict[str, Any]) -> None:
        template["spec"]["containers"][0]["env"][0]["value"] = "second"

    set_template(core, "recreate", new_env)
    wait_for(
        "second rollout", lambda: complete(core, "recreate", 2) and len(replica_sets(core, "recreate")) == 2
    )
    events, _ = core.store.list(EVENTS, "default")
    events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    scaling = [
        e["message"]
        for e in events
        if e["reason"] == "ScalingReplicaSet" and e["involvedObject"]["name"] == "recreate"
    ]
    down = next(i for i, m in enumerate(scaling) if m.startswith("Scaled down"))
    up_new = [i for i, m in enumerate(scaling) if m.startswith("Scaled up")][1]
    assert down < up_new


def test_scaling_a_deployment_changes_pod_count(core: LabCore) -> None:
    core.store.create(DEPLOYMENTS, deployment("scale", "example.test/echo:1", replicas=1))
    wait_for("one", lambda: complete(core, "scale", 1))
    obj = core.store.get(DEPLOYMENTS, "default", "scale")
    obj["spec"]["replicas"] = 3
    core.store.update(DEPLOYMENTS, obj)
    wait_for("three", lambda: complete(core, "scale", 3))
    obj = core.store.get(DEPLOYMENTS, "default", "scale")
    obj["spec"]["replicas"] = 1
    core.store.update(DEPLOYMENTS, obj)
    wait_for(
        "one again",
        lambda: (
            complete(core, "scale", 1)
            and len(core.store.list(PODS, "default", label_selector="app=scale")[0]) == 1
        ),
    )


def test_template_hash_ignores_its_own_label_and_changes_with_the_template() -> None:
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    labelled = {"metadata": {"labels": {"app": "a", "pod-template-hash": "x"}}, "spec": template["spec"]}
    assert template_hash(template) == template_hash(labelled)
    other = {"metadata": {"labels": {"app": "b"}}, "spec": template["spec"]}
    assert template_hash(template) != template_hash(other)
    assert set(template_hash(template)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_a_stuck_rollout_exceeds_its_progress_deadline(core: LabCore) -> None:
    core.store.create(
        DEPLOYMENTS, deployment("late", "example.test/never:1", replicas=1, progressDeadlineSeconds=1)
    )

    def progressing_reason() -> str:
        conditions = {c["type"]: c for c in status(core, "late").get("conditions") or []}
        return str(conditions.get("Progressing", {}).get("reason", ""))

    wait_for("ProgressDeadlineExceeded", lambda: progressing_reason() == "ProgressDeadlineExceeded")
    conditions = {c["type"]: c for c in status(core, "late")["conditions"]}
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Progressing"]["message"].endswith("has timed out progressing.")
    assert conditions["Available"]["reason"] == "MinimumReplicasUnavailable"


def test_stopping_the_lab_closes_every_listener() -> None:
    import socket

    from pytest_meshcheck.lab.cluster import default_registry

    from .testimages import TEST_IMAGES

    lab = LabCore("closing", registry=default_registry(TEST_IMAGES))
    lab.start()
    stopped = False
    try:
        lab.store.create(DEPLOYMENTS, deployment("bye", "example.test/echo:1", replicas=1))
        created = lab.store.create(
            GVR.core("services"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "bye", "namespace": "default"},
                "spec": {"selector": {"app": "bye"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
        wait_for("bye available", lambda: complete(lab, "bye", 1))
        pod_ip = lab.store.list(PODS, "default", label_selector="app=bye")[0][0]["status"]["podIP"]
        addresses = [(pod_ip, 8080), (created["spec"]["clusterIP"], 80)]
        wait_for("service listening", lambda: (created["spec"]["clusterIP"], 80) in lab.proxy.listening())
        lab.stop()
        stopped = True
        for address in addresses:
            probe = socket.socket()
            try:
                assert probe.connect_ex(address) != 0, address
            finally:
                probe.close()
    finally:
        if not stopped:
            lab.stop()
