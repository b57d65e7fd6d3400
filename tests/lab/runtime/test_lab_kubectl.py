"""Real kubectl against a whole Lab (API server + controllers + kubelet + network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.lab.cluster import Lab

from .conftest import wait_for
from .testimages import TEST_IMAGES

pytest.importorskip(
    "pytest_meshcheck.lab.apiserver.server", reason="the lab API server is not in this tree yet"
)
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
DATA = Path(__file__).parent / "data"

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: e2e}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: e2e}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: main
        image: example.test/echo:1
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: e2e}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(
        tmp_path_factory.mktemp("lab"),
        "kubectl-e2e",
        extra_images=TEST_IMAGES,
        base_backoff=0.5,
        max_backoff=2.0,
    )
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def kubectl(lab: Lab, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 90) -> str:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_deployment_lifecycle_with_kubectl(lab: Lab) -> None:
    kubectl(lab, "apply", "-f", "-", stdin=APP)
    kubectl(lab, "apply", "-f", "-", stdin=APP)  # re-applying is a no-op
    kubectl(lab, "-n", "e2e", "rollout", "status", "deployment/echo", "--timeout=60s")
    pods = json.loads(kubectl(lab, "-n", "e2e", "get", "pods", "-o", "json"))["items"]
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    table = kubectl(lab, "-n", "e2e", "get", "pods", "--no-headers")
    assert all(" 1/1 " in line and "Running" in line for line in table.splitlines())

    cluster_ip = kubectl(lab, "-n", "e2e", "get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}")
    node_port = kubectl(lab, "-n", "e2e", "get", "svc", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}")
    node_ip = kubectl(lab, "get", "nodes", "-o", "jsonpath={.items[0].status.addresses[0].address}")
    assert wait_for("ClusterIP answers", lambda: fetch(f"http://{cluster_ip}/a")).startswith("echo-")
    assert wait_for("NodePort answers", lambda: fetch(f"http://{node_ip}:{node_port}/b")).startswith("echo-")

    kubectl(lab, "-n", "e2e", "set", "image", "deployment/echo", "main=example.test/missing:0.0")
    wait_for(
        "ImagePullBackOff in kubectl get pods",
        lambda: "ImagePullBackOff" in kubectl(lab, "-n", "e2e", "get", "pods"),
    )
    assert fetch(f"http://{cluster_ip}/still").startswith("echo-")  # old pods keep serving

    kubectl(lab, "-n", "e2e", "set", "image", "deployment/echo", "main=example.test/echo:2")
    kubectl(lab, "-n", "e2e", "rollout", "restart", "deployment/echo")
    kubectl(lab, "-n", "e2e", "rollout", "status", "deployment/echo", "--timeout=60s")
    kubectl(lab, "-n", "e2e", "wait", "--for=condition=available", "deployment/echo", "--timeout=60s")
    revision = kubectl(
        lab,
        "-n",
        "e2e",
        "get",
        "deployment",
        "echo",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    )
    assert int(revision) >= 3
    environment = kubectl(lab, "-n", "e2e", "exec", "deployment/echo", "--", "env")
    api_ip = kubectl(lab, "get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
    assert f"KUBERNETES_SERVICE_HOST={api_ip}" in environment.splitlines()
    logs = kubectl(lab, "-n", "e2e", "logs", "deployment/echo")
    assert "listening on" in logs
    kubectl(lab, "-n", "e2e", "label", "deployment", "echo", "tier=test")
    assert (
        kubectl(lab, "-n", "e2e", "get", "deploy", "-l", "tier=test", "-o", "name")
        == "deployment.apps/echo\n"
    )

    kubectl(lab, "delete", "namespace", "e2e", "--wait", "--timeout=60s")
    assert (
        "NotFound"
        in subprocess.run(
            [KUBECTL or "", "--kubeconfig", str(lab.kubeconfig), "get", "ns", "e2e"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stderr
    )
    wait_for("ClusterIP closed", lambda: fetch(f"http://{cluster_ip}/gone") == "")


def test_upstream_bookinfo_runs_unmodified(lab: Lab) -> None:
    if not lab.core.registry.knows("docker.io/istio/examples-bookinfo-productpage-v1:1.20.3"):
        pytest.skip("the Bookinfo workloads are not registered in this tree")
    kubectl(lab, "create", "namespace", "bookinfo")
    manifest = str(DATA / "bookinfo.yaml")
    kubectl(lab, "-n", "bookinfo", "apply", "-f", manifest)
    kubectl(lab, "-n", "bookinfo", "apply", "-f", manifest)
    for name in ("details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"):
        kubectl(lab, "-n", "bookinfo", "rollout", "status", f"deployment/{name}", "--timeout=60s")
    lines = kubectl(lab, "-n", "bookinfo", "get", "pods", "--no-headers").splitlines()
    assert len(lines) == 6
    assert all(line.split()[1:3] == ["1/1", "Running"] for line in lines), lines
    ratings = kubectl(
        lab, "-n", "bookinfo", "get", "pod", "-l", "app=ratings", "-o", "jsonpath={.items[0].metadata.name}"
    )
    page = kubectl(
        lab,
        "-n",
        "bookinfo",
        "exec",
        ratings,
        "-c",
        "ratings",
        "--",
        "curl",
        "-sS",
        "productpage:9080/productpage",
    )
    assert "<title>Simple Bookstore App</title>" in page
    assert kubectl(lab, "-n", "bookinfo", "logs", "deployment/productpage-v1") != ""


def test_the_python_client_sees_the_same_runtime(lab: Lab) -> None:
    from kubernetes import client, config, watch
    from kubernetes.stream import stream as untyped_stream

    # The client's models are typed but its helpers are not; plain dict bodies are what kubectl
    # users write, so the calls go through Any.
    new_client: Any = config.new_client_from_config
    stream: Any = untyped_stream
    watcher: Any = watch.Watch
    api_client = new_client(config_file=str(lab.kubeconfig))
    core: Any = client.CoreV1Api(api_client)
    apps: Any = client.AppsV1Api(api_client)
    core.create_namespace({"metadata": {"name": "pyclient"}})
    apps.create_namespaced_deployment(
        "pyclient",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "example.test/echo:1",
                                "ports": [{"containerPort": 8080}],
                            }
                        ]
                    },
                },
            },
        },
    )
    ready_pod = ""
    for event in watcher().stream(core.list_namespaced_pod, "pyclient", timeout_seconds=60):
        pod = event["object"]
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        if conditions.get("Ready") == "True":
            ready_pod = pod.metadata.name
            break
    assert ready_pod.startswith("echo-")
    assert "listening on" in core.read_namespaced_pod_log(ready_pod, "pyclient", container="main")
    output = stream(
        core.connect_get_namespaced_pod_exec,
        ready_pod,
        "pyclient",
        command=["hostname"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output.strip() == ready_pod
    deployment = apps.read_namespaced_deployment_status("echo", "pyclient")
    assert deployment.status.available_replicas == 1
    assert deployment.status.observed_generation == deployment.metadata.generation
    core.delete_namespace("pyclient")
    api_client.close()
