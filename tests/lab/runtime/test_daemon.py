"""Background labs: ``meshcheck lab up/kubeconfig/status/down`` and the pytest provider."""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pytest_meshcheck.lab import daemon
from pytest_meshcheck.lab.commands import add_lab_commands
from pytest_meshcheck.providers.base import ClusterHandle, ExportsDiagnostics, Provider
from pytest_meshcheck.providers.lab import LabProvider
from pytest_meshcheck.settings import default_settings

pytest.importorskip(
    "pytest_meshcheck.lab.apiserver.server", reason="the lab API server is not in this tree yet"
)
KUBECTL = shutil.which("kubectl")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MESHCHECK_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    for name, _ in daemon.status():
        daemon.down(name, timeout=10)


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="meshcheck")
    add_lab_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code = args.handler(args)
    return code, capsys.readouterr().out


def port_open(url: str) -> bool:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "", parsed.port or 0), timeout=1).close()
    except OSError:
        return False
    return True


def test_two_labs_run_side_by_side_and_down_frees_their_ports(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = tmp_path / "custom" / "kubeconfig"
    code, out = run_cli("lab", "up", "--name", "one", "--kubeconfig", str(custom), capsys=capsys)
    assert code == 0 and out.strip() == str(custom)
    code, out = run_cli("lab", "up", "--name", "two", capsys=capsys)
    assert code == 0
    two_kubeconfig = Path(out.strip())
    assert two_kubeconfig.is_relative_to(home)
    one, two = daemon.running("one"), daemon.running("two")
    assert one is not None and two is not None
    assert one.url != two.url and one.pid != two.pid
    assert daemon.api_answers(custom) and daemon.api_answers(two_kubeconfig)
    if KUBECTL:
        nodes = subprocess.run(
            [KUBECTL, "--kubeconfig", str(custom), "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert nodes.strip() == "node/lab-control-plane"

    code, out = run_cli("lab", "kubeconfig", "--name", "two", capsys=capsys)
    assert (code, out.strip()) == (0, str(two_kubeconfig))
    code, out = run_cli("lab", "status", capsys=capsys)
    assert code == 0 and "one" in out and "two" in out and "running" in out

    code, out = run_cli("lab", "down", "--name", "one", capsys=capsys)
    assert code == 0 and "stopped" in out
    assert not daemon.process_alive(one.pid)
    assert not port_open(one.url)
    assert port_open(two.url)
    code, out = run_cli("lab", "down", "--name", "one", capsys=capsys)
    assert "was not running" in out
    code, _ = run_cli("lab", "kubeconfig", "--name", "one", capsys=capsys)
    assert code == 1
    assert daemon.down("two")
    assert not port_open(two.url)


def test_up_returns_the_running_lab_instead_of_starting_another(home: Path, tmp_path: Path) -> None:
    first = daemon.up("again")
    second = daemon.up("again", kubeconfig=tmp_path / "copy" / "config")
    assert second.pid == first.pid and second.url == first.url
    assert second.kubeconfig == (tmp_path / "copy" / "config").resolve()
    assert second.kubeconfig.read_text() == first.kubeconfig.read_text()
    assert daemon.down("again")


def test_lab_provider_hands_back_a_kubeconfig_handle_and_tears_down_idempotently(
    home: Path, tmp_path: Path
) -> None:
    provider = LabProvider(default_settings(lab_faults="ratings-5xx"))
    assert isinstance(provider, Provider) and isinstance(provider, ExportsDiagnostics)
    provider.teardown()  # before provision: nothing to do
    handle = provider.provision()
    try:
        assert handle.provider == "lab" and handle.kubeconfig.exists()
        assert ClusterHandle.from_json(handle.to_json()) == handle
        assert handle.details["lab_faults"] == "ratings-5xx"
        assert daemon.api_answers(handle.kubeconfig)
        exported = provider.export_diagnostics(tmp_path / "diag")
        assert exported and "serving at" in exported[0].read_text()
    finally:
        provider.teardown()
    provider.teardown()
    assert not port_open(handle.details["api"])
