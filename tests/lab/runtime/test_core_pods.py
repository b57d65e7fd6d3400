from __future__ import annotations

import functools
import io
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from pytest_meshcheck.lab.cluster import LabCore
from pytest_meshcheck.lab.errors import NotFound
from pytest_meshcheck.lab.store import GVR

from .conftest import PODS, SERVICES, wait_for
from .testimages import CaptureSidecar, EchoServer

ENDPOINTS = GVR.core("endpoints")
EVENTS = GVR.core("events")


def pod(
    name: str,
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Always",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers), "restartPolicy": restart_policy}
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels or {"app": name},
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def echo(name: str = "main", port: int = 8080, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "example.test/echo:1",
        "ports": [{"containerPort": port, "name": "http"}],
        "env": [{"name": "GREETING", "value": "hi"}],
        **extra,
    }


def status_of(core: LabCore, name: str) -> dict[str, Any]:
    return core.store.get(PODS, "default", name).get("status") or {}


def waiting_reason(core: LabCore, name: str, *, init: bool = False) -> str:
    key = "initContainerStatuses" if init else "containerStatuses"
    statuses = status_of(core, name).get(key) or [{}]
    return str((statuses[0].get("state") or {}).get("waiting", {}).get("reason", ""))


def ready(core: LabCore, name: str) -> bool:
    conditions = {c["type"]: c["status"] for c in status_of(core, name).get("conditions") or []}
    return conditions.get("Ready") == "True"


def event_reasons(core: LabCore, name: str) -> set[str]:
    events, _ = core.store.list(EVENTS, "default")
    return {e["reason"] for e in events if e["involvedObject"].get("name") == name}


def test_running_pod_status_looks_like_a_node_reports_it(core: LabCore) -> None:
    core.store.create(PODS, pod("web", echo()))
    wait_for("web ready", lambda: ready(core, "web"))
    status = status_of(core, "web")
    assert status["phase"] == "Running"
    assert status["podIP"].startswith(f"127.{core.addresses.block}.") if core.addresses else False
    assert status["hostIP"] == core.nodes["lab-control-plane"]
    container = status["containerStatuses"][0]
    assert container["ready"] is True and container["started"] is True
    assert "running" in container["state"]
    assert container["imageID"].startswith("example.test/echo@sha256:")
    assert {c["type"] for c in status["conditions"]} >= {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= event_reasons(core, "web")
    with urllib.request.urlopen(f"http://{status['podIP']}:8080/hello", timeout=5) as response:
        assert response.read().decode().startswith("web /hello hi")


def test_unknown_image_goes_err_image_pull_then_image_pull_backoff(core: LabCore) -> None:
    core.store.create(PODS, pod("ghost", {"name": "main", "image": "example.test/does-not-exist:9"}))
    seen: set[str] = set()

    def both() -> bool:
        seen.add(waiting_reason(core, "ghost"))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    wait_for("both pull failure reasons", both)
    assert status_of(core, "ghost")["phase"] == "Pending"
    assert {"Failed", "BackOff"} <= event_reasons(core, "ghost")


def test_crashing_container_counts_restarts_and_backs_off(core: LabCore) -> None:
    core.store.create(PODS, pod("crashy", {"name": "main", "image": "example.test/crash"}))
    wait_for("CrashLoopBackOff", lambda: waiting_reason(core, "crashy") == "CrashLoopBackOff")
    wait_for("two restarts", lambda: status_of(core, "crashy")["containerStatuses"][0]["restartCount"] >= 2)
    last = status_of(core, "crashy")["containerStatuses"][0]["lastState"]["terminated"]
    assert last["reason"] == "Error" and last["exitCode"] == 1


def test_init_containers_run_first_and_native_sidecars_stay(core: LabCore) -> None:
    init: list[dict[str, Any]] = [
        {"name": "setup", "image": "example.test/completes", "args": ["0"]},
        {
            "name": "helper",
            "image": "example.test/echo:1",
            "restartPolicy": "Always",
            "ports": [{"containerPort": 9090}],
        },
    ]
    core.store.create(PODS, pod("inits", echo(), init=init))
    wait_for("inits ready", lambda: ready(core, "inits"))
    statuses = {s["name"]: s for s in status_of(core, "inits")["initContainerStatuses"]}
    assert statuses["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in statuses["helper"]["state"]


def test_failing_init_container_blocks_the_pod(core: LabCore) -> None:
    core.store.create(
        PODS,
        pod("badinit", echo(), init=[{"name": "setup", "image": "example.test/completes", "args": ["3"]}]),
    )
    wait_for(
        "init restarts",
        lambda: (
            (status_of(core, "badinit").get("initContainerStatuses") or [{}])[0].get("restartCount", 0) >= 1
        ),
    )
    status = status_of(core, "badinit")
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def test_readiness_probe_moves_pod_between_endpoint_lists(core: LabCore) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1}
    core.store.create(PODS, pod("probed", echo(readinessProbe=probe)))
    core.store.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "probed", "namespace": "default"},
            "spec": {"selector": {"app": "probed"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def subset_key() -> str:
        try:
            subsets = core.store.get(ENDPOINTS, "default", "probed").get("subsets") or [{}]
        except NotFound:
            return ""

        return "addresses" if "addresses" in subsets[0] else "notReadyAddresses" if subsets[0] else ""

    wait_for("ready endpoint", lambda: subset_key() == "addresses")
    EchoServer.healthy["probed"] = False
    try:
        wait_for("not ready endpoint", lambda: subset_key() == "notReadyAddresses")
        assert not ready(core, "probed")
        events, _ = core.store.list(EVENTS, "default")
        assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in {
            e["message"] for e in events if e["reason"] == "Unhealthy"
        }
    finally:
        EchoServer.healthy.pop("probed", None)
    wait_for("ready again", lambda: subset_key() == "addresses")


def test_liveness_failure_restarts_the_container(core: LabCore) -> None:
    EchoServer.healthy["alive"] = False
    try:
        probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
        core.store.create(PODS, pod("alive", echo(livenessProbe=probe)))
        wait_for(
            "a restart",
            lambda: (
                (status_of(core, "alive").get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
            ),
        )
    finally:
        EchoServer.healthy.pop("alive", None)
    assert "Killing" in event_reasons(core, "alive")


def test_logs_and_exec_through_the_kubelet(core: LabCore) -> None:
    core.store.create(PODS, pod("talk", echo()))
    wait_for("talk ready", lambda: ready(core, "talk"))
    assert core.kubelet is not None
    stop = threading.Event()
    lines = list(
        core.kubelet.logs(
            "default",
            "talk",
            "main",
            follow=False,
            tail_lines=None,
            previous=False,
            timestamps=False,
            stop=stop,
        )
    )
    assert lines and lines[0].startswith(b"listening on ")
    out, err = io.BytesIO(), io.BytesIO()
    code = core.kubelet.exec(
        "default", "talk", "main", ["hostname"], stdin=None, stdout=out, stderr=err, tty=False
    )
    assert (code, out.getvalue().strip()) == (0, b"talk") or code == 127


def test_node_port_and_load_balancer_reach_the_pods(core: LabCore) -> None:
    core.store.create(PODS, pod("edge", echo()))
    created = core.store.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "edge", "namespace": "default"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "edge"},
                "ports": [{"name": "http", "port": 8000, "targetPort": 8080}],
            },
        },
    )
    node_port = created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    wait_for("edge ready", lambda: ready(core, "edge"))
    ingress = wait_for(
        "LB ingress",
        lambda: (
            (core.store.get(SERVICES, "default", "edge").get("status") or {})
            .get("loadBalancer", {})
            .get("ingress")
        ),
    )
    node_ip = core.nodes["lab-control-plane"]
    for url in (f"http://{node_ip}:{node_port}/n", f"http://{ingress[0]['ip']}:8000/lb"):
        body = wait_for(url, functools.partial(_get, url))
        assert body.startswith("edge ")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return ""


def test_plain_dialer_resolves_cluster_names_and_capture_dialer_goes_through_the_sidecar(
    core: LabCore,
) -> None:
    core.store.create(PODS, pod("target", echo()))
    core.store.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "target", "namespace": "default"},
            "spec": {"selector": {"app": "target"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    core.store.create(
        PODS,
        pod(
            "meshed",
            echo(),
            {"name": "istio-proxy", "image": "example.test/sidecar"},
            init=[{"name": "istio-init", "image": "example.test/completes"}],
        ),
    )
    core.store.create(PODS, pod("plain", echo()))
    wait_for("pods ready", lambda: all(ready(core, n) for n in ("target", "meshed", "plain")))
    assert core.kubelet is not None
    plain = _context(core, "plain", "main")
    meshed = _context(core, "meshed", "main")
    proxy = _context(core, "meshed", "istio-proxy")
    assert plain.bind_ip == plain.pod_ip
    assert meshed.bind_ip == meshed.local_ip != meshed.pod_ip
    assert proxy.bind_ip == proxy.pod_ip
    for name in ("target", "target.default", "target.default.svc", "target.default.svc.cluster.local"):
        with plain.dialer.connect(name, 80, timeout=5) as sock:
            sock.sendall(b"GET /dns HTTP/1.0\r\n\r\n")
            assert b"target /dns" in _read_all(sock)
    with pytest.raises(socket.gaierror):
        plain.dialer.connect("nope.default", 80, timeout=2)
    cluster_ip = core.store.get(SERVICES, "default", "target")["spec"]["clusterIP"]
    with meshed.dialer.connect("target", 80, timeout=5) as sock:
        assert _read_all(sock) == b"captured\n"
    assert CaptureSidecar.headers[-1].startswith(f"PROXY TCP4 {meshed.pod_ip} {cluster_ip} ")
    assert CaptureSidecar.headers[-1].endswith(" 80")


def _context(core: LabCore, pod_name: str, container: str) -> Any:
    assert core.kubelet is not None
    _, slot = core.kubelet._slot("default", pod_name, container)
    assert slot.current is not None
    return slot.current.context


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_deleting_a_pod_stops_its_containers_and_frees_its_address(core: LabCore) -> None:
    core.store.create(PODS, pod("gone", echo()))
    wait_for("gone ready", lambda: ready(core, "gone"))
    ip = status_of(core, "gone")["podIP"]
    core.store.delete(PODS, "default", "gone")
    kubelet = core.kubelet
    assert kubelet is not None
    wait_for("worker gone", lambda: ("default", "gone") not in kubelet.running_pods())
    assert "Killing" in event_reasons(core, "gone")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 8080), timeout=1).close()


def test_pods_spread_over_several_nodes() -> None:
    from pytest_meshcheck.lab.cluster import default_registry

    from .testimages import TEST_IMAGES

    lab = LabCore("multi", nodes=3, registry=default_registry(TEST_IMAGES), base_backoff=0.3)
    lab.start()
    try:
        nodes, _ = lab.store.list(GVR.core("nodes"))
        assert sorted(n["metadata"]["name"] for n in nodes) == [
            "lab-control-plane",
            "lab-worker",
            "lab-worker2",
        ]
        assert len({n["status"]["addresses"][0]["address"] for n in nodes}) == 3
        for index in range(3):
            lab.store.create(PODS, pod(f"spread-{index}", echo()))
        wait_for("all ready", lambda: all(ready(lab, f"spread-{i}") for i in range(3)))
        hosts = {status_of(lab, f"spread-{i}")["hostIP"] for i in range(3)}
        assert hosts == set(lab.nodes.values())
    finally:
        lab.stop()


def test_init_container_of_a_server_image_completes_without_serving(core: LabCore) -> None:
    init = [{"name": "istio-init", "image": "example.test/echo:1", "args": ["istio-iptables", "-p", "15001"]}]
    core.store.create(PODS, pod("oneshot", echo(), init=init))
    wait_for("oneshot ready", lambda: ready(core, "oneshot"))
    state = status_of(core, "oneshot")["initContainerStatuses"][0]["state"]
    assert state["terminated"]["reason"] == "Completed"
    assert core.kubelet is not None
    logs = list(
        core.kubelet.logs(
            "default",
            "oneshot",
            "istio-init",
            follow=False,
            tail_lines=None,
            previous=False,
            timestamps=False,
            stop=threading.Event(),
        )
    )
    assert logs == []


def test_fault_switchboard_follows_its_configmap(core: LabCore) -> None:
    from pytest_meshcheck.lab.controllers.faults import FAULTS_CONFIGMAP, FAULTS_KEY, FAULTS_NAMESPACE

    configmaps = GVR.core("configmaps")
    board = core.faults
    assert board.active() == set()
    configmap = core.store.get(configmaps, FAULTS_NAMESPACE, FAULTS_CONFIGMAP)
    configmap["data"][FAULTS_KEY] = "ratings-5xx, not-a-fault,slow-reviews"
    core.store.update(configmaps, configmap)
    wait_for("faults switched on", lambda: board.active() == {"ratings-5xx", "slow-reviews"})
    events, _ = core.store.list(EVENTS, FAULTS_NAMESPACE)
    assert any(e["reason"] == "UnknownFault" and "not-a-fault" in e["message"] for e in events)
    core.store.delete(configmaps, FAULTS_NAMESPACE, FAULTS_CONFIGMAP)
    wait_for("faults cleared", lambda: board.active() == set())


def test_lab_seeds_its_faults_and_hands_services_to_workloads() -> None:
    from pytest_meshcheck.lab.cluster import default_registry

    from .testimages import TEST_IMAGES

    lab = LabCore("faulty", registry=default_registry(TEST_IMAGES), faults=("gateway-404",))
    lab.start()
    try:
        assert lab.faults.active() == {"gateway-404"}
        lab.store.create(PODS, pod("svc", echo()))
        wait_for("svc ready", lambda: ready(lab, "svc"))
        assert lab.kubelet is not None
        _, slot = lab.kubelet._slot("default", "svc", "main")
        assert slot.current is not None
        services = slot.current.context.services
        assert services["faults"].active() == {"gateway-404"}
        assert services["store"] is lab.store
    finally:
        lab.stop()
