"""The Kubernetes objects of one in-cluster load run, as plain data (pure functions of a spec).

One namespace per run (deleting it removes everything the run made, also after a crash), not
injected: the load comes from outside the mesh, as a client's would, through the ingress
gateway's in-cluster Service. A ConfigMap carries the locustfiles (the load's own, the helpers
it imports, and our report plugin). A standalone run is one Job; a distributed run is a master
Job behind a Service plus one worker Job with ``completions = parallelism = workers``. Every pod
runs the official Locust image with the same arguments a local run would get, minus the output
files: the report plugin prints each process's final report to its log instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pytest_meshcheck.load.spec import ENV_GENERATOR, LoadSpec, report_plugin_path

#: Locust's official image; the tag is the Locust version installed beside the plugin.
LOCUST_IMAGE = "docker.io/locustio/locust"
#: Where the pods see the ConfigMap's files.
MOUNT_PATH = "/mnt/locust"
MASTER_PORT = 5557
RUN_LABEL = "meshcheck.io/load-run"
ROLE_LABEL = "meshcheck.io/load-role"
CONTAINER = "locust"
#: Seconds a pod may outlive its run's own duration before the Job is failed by its deadline, so a
#: hung generator never runs on in the cluster after the harness is gone.
DEADLINE_ALLOWANCE_S = 300


def locust_image(version: str) -> str:
    return f"{LOCUST_IMAGE}:{version}"


def locustfile_names(spec: LoadSpec) -> dict[str, Path]:
    """ConfigMap key -> file: the load's locustfile, the shared helpers next to it, our plugin.

    A user's locustfile may import modules beside it; only the shipped helper ``_meshcheck_env.py``
    is carried along (from the user's directory if they have one of that name, else ours).
    """
    plugin = report_plugin_path()
    files = {spec.locustfile.name: spec.locustfile, plugin.name: plugin}
    helper = spec.locustfile.parent / "_meshcheck_env.py"
    files["_meshcheck_env.py"] = helper if helper.is_file() else plugin.parent / "_meshcheck_env.py"
    return files


def _locust_args(spec: LoadSpec) -> list[str]:
    files = f"{MOUNT_PATH}/{spec.locustfile.name},{MOUNT_PATH}/{report_plugin_path().name}"
    return ["-f", files, "--only-summary", "--loglevel", "INFO", "--exit-code-on-error", "0"]


def _run_args(spec: LoadSpec, target_url: str) -> list[str]:
    return [
        "--headless",
        "-H", target_url,
        "-u", str(spec.users),
        "-r", repr(spec.spawn_rate),
        "-t", f"{spec.run_time_s}s",
        "--stop-timeout", f"{math.ceil(spec.stop_timeout_s)}s",
    ]  # fmt: skip


def _env(spec: LoadSpec, role: str) -> list[dict[str, Any]]:
    values = spec.locust_env(role)
    values.pop(ENV_GENERATOR, None)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    # Each pod names itself: the workers of one Job are otherwise identical.
    env.append({"name": ENV_GENERATOR, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
    return env


def _job(
    name: str,
    *,
    namespace: str,
    run_id: str,
    role: str,
    image: str,
    args: list[str],
    spec: LoadSpec,
    count: int,
) -> dict[str, Any]:
    labels = {RUN_LABEL: run_id, ROLE_LABEL: role}
    deadline = int(
        spec.run_time_s + spec.stop_timeout_s + spec.workers_connect_timeout_s + DEADLINE_ALLOWANCE_S
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "completions": count,
            "parallelism": count,
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image,
                            "args": args,
                            "env": _env(spec, role),
                            "ports": [{"containerPort": MASTER_PORT, "name": "master"}]
                            if role == "master"
                            else [],
                            "volumeMounts": [
                                {"name": "locustfiles", "mountPath": MOUNT_PATH, "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [{"name": "locustfiles", "configMap": {"name": "locustfiles"}}],
                },
            },
        },
    }


def run_manifests(
    spec: LoadSpec, *, namespace: str, run_id: str, image: str, target_url: str
) -> list[dict[str, Any]]:
    """Namespace, ConfigMap, and the Jobs (plus the master's Service) of one run, in apply order."""
    labels = {RUN_LABEL: run_id}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {**labels, "istio-injection": "disabled"}},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "locustfiles", "namespace": namespace, "labels": labels},
            "data": {key: path.read_text() for key, path in locustfile_names(spec).items()},
        },
    ]

    def job(role: str, args: list[str], count: int) -> dict[str, Any]:
        return _job(
            role,
            namespace=namespace,
            run_id=run_id,
            role=role,
            image=image,
            args=args,
            spec=spec,
            count=count,
        )

    run = [*_locust_args(spec), *_run_args(spec, target_url)]
    if spec.workers == 0:
        docs.append(job("standalone", run, 1))
        return docs
    master_args = [
        *run,
        "--master",
        "--master-bind-port", str(MASTER_PORT),
        "--expect-workers", str(spec.workers),
        "--expect-workers-max-wait", str(max(1, math.ceil(spec.workers_connect_timeout_s))),
    ]  # fmt: skip
    worker_args = [*_locust_args(spec), "--worker", "--master-host", f"master.{namespace}.svc.cluster.local",
                   "--master-port", str(MASTER_PORT)]  # fmt: skip
    docs += [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "master", "namespace": namespace, "labels": labels},
            "spec": {
                "selector": {RUN_LABEL: run_id, ROLE_LABEL: "master"},
                "ports": [{"name": "tcp-master", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
            },
        },
        job("master", master_args, 1),
        job("worker", worker_args, spec.workers),
    ]
    return docs
