from __future__ import annotations

import urllib.request
from typing import Any

from pytest_meshcheck.lab.cluster import LabCore

from .conftest import DEPLOYMENTS, PODS, SERVICES, wait_for


def deployment(name: str, image: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "env": [{"name": "GREETING", "value": "hi"}],
                        }
                    ]
                },
            },
            **spec,
        },
    }


def service(name: str, kind: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": kind,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def running_pods(core: LabCore, app: str) -> list[dict[str, Any]]:
    pods, _ = core.store.list(PODS, "default", label_selector=f"app={app}")
    return [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
    ]


def test_deployment_rolls_out_and_service_answers_on_cluster_ip(core: LabCore) -> None:
    core.store.create(DEPLOYMENTS, deployment("echo", "example.test/echo:1"))
    created = core.store.create(SERVICES, service("echo"))
    cluster_ip = created["spec"]["clusterIP"]
    assert cluster_ip.startswith("127.")

    def available() -> bool:
        status = core.store.get(DEPLOYMENTS, "default", "echo").get("status") or {}
        return status.get("availableReplicas") == 2 and status.get("updatedReplicas") == 2

    wait_for("deployment available", available)
    pods = running_pods(core, "echo")
    assert len(pods) == 2
    hash_label = pods[0]["metadata"]["labels"]["pod-template-hash"]
    assert pods[0]["metadata"]["name"].startswith(f"echo-{hash_label}-")
    assert pods[0]["metadata"]["ownerReferences"][0]["controller"] is True
    seen = set()
    for _ in range(4):
        with urllib.request.urlopen(f"http://{cluster_ip}/x", timeout=5) as response:
            seen.add(response.read().decode().split()[0])
    assert seen == {p["metadata"]["name"] for p in pods}
    status = core.store.get(DEPLOYMENTS, "default", "echo")["status"]
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
