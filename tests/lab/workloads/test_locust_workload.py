"""The lab's Locust image: how a container's arguments are mapped onto the lab's machine, and the
``kill`` it offers to exec. Real runs of it are in tests/load/test_load_in_cluster.py."""

from __future__ import annotations

import io
import signal
import sys

import pytest

from pytest_meshcheck.lab.workloads.locust import LocustWorkload

from .conftest import PodNet


def _workload(net: PodNet, *args: str, command: tuple[str, ...] = ()) -> LocustWorkload:
    ctx = net.context(name="master", image="docker.io/locustio/locust:2.47.0", args=args)
    ctx.volumes = {"/mnt/locust": "/tmp/projected/locustfiles", "/mnt/locust-extra": "/tmp/projected/extra"}
    ctx.command = command
    return LocustWorkload(ctx)


def test_mount_paths_hosts_and_the_master_bind_are_mapped(podnet: PodNet) -> None:
    podnet.resolver.names.update({"istio-ingressgateway": "10.96.0.7", "master": "10.96.0.9"})
    workload = _workload(
        podnet,
        "-f",
        "/mnt/locust/load.py,/mnt/locust/_meshcheck_report.py",
        "--config=/mnt/locust-extra/locust.conf",
        "-H",
        "http://istio-ingressgateway.default.svc.cluster.local:80",
        "--master",
        "--headless",
        command=("locust",),
    )

    argv = workload.argv()

    assert argv[:3] == [sys.executable, "-m", "locust"]
    assert (
        argv[argv.index("-f") + 1]
        == "/tmp/projected/locustfiles/load.py,/tmp/projected/locustfiles/_meshcheck_report.py"
    )
    assert "--config=/tmp/projected/extra/locust.conf" in argv
    assert argv[argv.index("-H") + 1] == "http://10.96.0.7:80"
    assert argv[argv.index("--master-bind-host") + 1] == workload.ctx.bind_ip


def test_a_worker_finds_its_master_by_cluster_dns(podnet: PodNet) -> None:
    podnet.resolver.names["master"] = "10.96.0.9"
    argv = _workload(podnet, "--worker", "--master-host", "master.default.svc.cluster.local").argv()

    assert argv[argv.index("--master-host") + 1] == "10.96.0.9"
    assert "--master-bind-host" not in argv


def test_another_command_than_locust_is_refused(podnet: PodNet) -> None:
    with pytest.raises(ValueError, match="only `locust`"):
        _workload(podnet, "-c", "sleep 1", command=("sh",)).argv()


def test_kill_signals_only_the_main_process(podnet: PodNet, monkeypatch: pytest.MonkeyPatch) -> None:
    workload = _workload(podnet)
    sent: list[signal.Signals] = []
    monkeypatch.setattr(workload, "signal", sent.append)
    kill = workload.exec_commands()["kill"]
    err = io.BytesIO()

    assert kill(["kill", "-TERM", "1"], None, io.BytesIO(), err) == 0
    assert kill(["kill", "-INT", "1"], None, io.BytesIO(), err) == 0
    assert kill(["kill", "-9", "1"], None, io.BytesIO(), err) == 0
    assert kill(["kill", "1"], None, io.BytesIO(), err) == 0
    assert sent == [signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGTERM]
    assert kill(["kill", "-TERM", "42"], None, io.BytesIO(), err) == 1
    assert kill(["kill", "-BOGUS", "1"], None, io.BytesIO(), err) == 1
    assert b"No such process" in err.getvalue() and b"invalid signal" in err.getvalue()
