"""Jobs run their pod template to completion; ConfigMap and Secret volumes are projected to files."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.lab.cluster import LabCore, default_registry
from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.store import GVR

from .conftest import PODS, wait_for
from .testimages import TEST_IMAGES

JOBS = GVR.parse("batch/v1/jobs")
CONFIGMAPS = GVR.core("configmaps")
SECRETS = GVR.core("secrets")
EVENTS = GVR.core("events")


class ListsFiles:
    """Logs every file under its mounts (path and content), then exits 0."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        return None

    def run(self) -> int:
        for mount, directory in sorted(self.ctx.volumes.items()):
            for path in sorted(Path(directory).rglob("*")):
                if path.is_file():
                    self.ctx.log.write(f"{mount}/{path.relative_to(directory)}={path.read_text()}")
            self.ctx.log.write(f"{mount} is a directory: {Path(directory).is_dir()}")
        return 0

    def stop(self) -> None:
        return None


@pytest.fixture
def core() -> Iterator[LabCore]:
    lab = LabCore(
        "test",
        registry=default_registry({**TEST_IMAGES, "example.test/lists-files": ListsFiles}),
        base_backoff=0.3,
        max_backoff=1.0,
    )
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def job(
    name: str, *, exit_code: int, completions: int = 1, parallelism: int = 1, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "example.test/completes:1", "args": [str(exit_code)]}
                    ],
                },
            },
        },
    }


def _condition(core: LabCore, name: str) -> str:
    status = core.store.get(JOBS, "default", name).get("status") or {}
    return next((c["type"] for c in status.get("conditions") or [] if c.get("status") == "True"), "")


def _pods(core: LabCore, name: str) -> list[dict[str, Any]]:
    pods, _ = core.store.list(PODS, "default")
    return [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name]


def test_a_job_completes_after_its_completions_succeed(core: LabCore) -> None:
    core.store.create(JOBS, job("three", exit_code=0, completions=3, parallelism=2), namespace="default")

    wait_for("the Job to complete", lambda: _condition(core, "three") == "Complete")
    status = core.store.get(JOBS, "default", "three")["status"]
    assert status["succeeded"] == 3
    assert "active" not in status and "failed" not in status
    assert status["startTime"] and status["completionTime"]
    pods = _pods(core, "three")
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    labels = pods[0]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "three"
    assert labels["controller-uid"] == core.store.get(JOBS, "default", "three")["metadata"]["uid"]


def test_a_job_fails_once_failures_exceed_its_backoff_limit(core: LabCore) -> None:
    core.store.create(JOBS, job("fails", exit_code=3, backoffLimit=1), namespace="default")

    wait_for("the Job to fail", lambda: _condition(core, "fails") == "Failed")
    status = core.store.get(JOBS, "default", "fails")["status"]
    assert status["failed"] == 2
    assert status["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    assert "succeeded" not in status


def test_an_active_deadline_stops_a_job(core: LabCore) -> None:
    body = job("slow", exit_code=0, activeDeadlineSeconds=1)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "example.test/echo:1"
    core.store.create(JOBS, body, namespace="default")

    wait_for("the deadline to fail the Job", lambda: _condition(core, "slow") == "Failed", timeout=30)
    assert core.store.get(JOBS, "default", "slow")["status"]["conditions"][-1]["reason"] == "DeadlineExceeded"
    wait_for("its pod to be deleted", lambda: not _pods(core, "slow"), timeout=30)


def _files_pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "files", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": volumes,
            "containers": [{"name": "main", "image": "example.test/lists-files:1", "volumeMounts": mounts}],
        },
    }


def _log(core: LabCore, pod: str) -> str:
    assert core.kubelet is not None
    lines = core.kubelet.logs(
        "default",
        pod,
        "",
        follow=False,
        tail_lines=None,
        previous=False,
        timestamps=False,
        stop=threading.Event(),
    )
    return b"".join(lines).decode()


def test_configmap_and_secret_volumes_are_files_at_their_mount_paths(core: LabCore) -> None:
    core.store.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "scripts"},
            "data": {"a.py": "A", "b.txt": "B"},
        },
        namespace="default",
    )
    core.store.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
        namespace="default",
    )
    pod = _files_pod(
        [
            {"name": "scripts", "configMap": {"name": "scripts"}},
            {
                "name": "picked",
                "configMap": {"name": "scripts", "items": [{"key": "b.txt", "path": "sub/renamed"}]},
            },
            {"name": "token", "secret": {"secretName": "token"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        [
            {"name": "scripts", "mountPath": "/mnt/scripts"},
            {"name": "picked", "mountPath": "/etc/picked"},
            {"name": "token", "mountPath": "/var/run/token"},
            {"name": "scratch", "mountPath": "/tmp/scratch"},
        ],
    )
    core.store.create(PODS, pod, namespace="default")

    wait_for(
        "the pod to succeed",
        lambda: core.store.get(PODS, "default", "files").get("status", {}).get("phase") == "Succeeded",
    )
    log = _log(core, "files")
    assert "/mnt/scripts/a.py=A" in log and "/mnt/scripts/b.txt=B" in log
    assert "/etc/picked/sub/renamed=B" in log and "/etc/picked/b.txt" not in log
    assert "/var/run/token/token=s3cret" in log
    assert "/tmp/scratch is a directory: True" in log


def test_a_missing_configmap_keeps_the_container_creating_until_it_exists(core: LabCore) -> None:
    pod = _files_pod(
        [{"name": "late", "configMap": {"name": "late"}}], [{"name": "late", "mountPath": "/late"}]
    )
    core.store.create(PODS, pod, namespace="default")

    def failed_mount() -> bool:
        events, _ = core.store.list(EVENTS, "default")
        return any(e.get("reason") == "FailedMount" and "late" in e.get("message", "") for e in events)

    wait_for("a FailedMount event", failed_mount)
    assert core.store.get(PODS, "default", "files")["status"]["phase"] == "Pending"
    core.store.create(
        CONFIGMAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"x": "1"}},
        namespace="default",
    )
    wait_for(
        "the pod to succeed",
        lambda: core.store.get(PODS, "default", "files")["status"]["phase"] == "Succeeded",
    )
    assert "/late/x=1" in _log(core, "files")
