"""Run a Lab as a detached background process, and find, check and stop such labs.

``up`` starts ``python -m pytest_meshcheck.lab.daemon run`` in its own session (so it outlives the
shell or the pytest process that started it, and keeps the lab's many threads and its GIL out of
the caller) and returns once the lab's API server answers. Everything about a lab lives in
``$MESHCHECK_HOME/labs/<name>/`` (default ``~/.cache/meshcheck``): ``state.json`` (pid, API URL,
kubeconfig path), the kubeconfig, the CA/certificates, and ``daemon.log``. ``down`` sends SIGTERM,
waits for the process to stop its pods, release its listeners and exit, and escalates to SIGKILL
only after the timeout. Each lab claims its own loopback block and an ephemeral API port, so any
number of labs can run side by side.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STATE_FILE = "state.json"
LOG_FILE = "daemon.log"
_MODULE = "pytest_meshcheck.lab.daemon"


class LabDaemonError(RuntimeError):
    """A lab could not be started, reached or stopped; the message says what to do."""


def meshcheck_home() -> Path:
    configured = os.environ.get("MESHCHECK_HOME", "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "meshcheck"


def lab_dir(name: str) -> Path:
    return meshcheck_home() / "labs" / name


@dataclass(frozen=True, kw_only=True)
class LabState:
    name: str
    pid: int
    url: str
    kubeconfig: Path
    directory: Path
    started: float

    @classmethod
    def read(cls, directory: Path) -> LabState | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text())
            return cls(
                name=str(data["name"]),
                pid=int(data["pid"]),
                url=str(data["url"]),
                kubeconfig=Path(data["kubeconfig"]),
                directory=directory,
                started=float(data["started"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self) -> None:
        payload = {
            "name": self.name,
            "pid": self.pid,
            "url": self.url,
            "kubeconfig": str(self.kubeconfig),
            "started": self.started,
        }
        temporary = self.directory / f".{STATE_FILE}.tmp"
        temporary.write_text(json.dumps(payload, indent=2))
        temporary.replace(self.directory / STATE_FILE)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (no-op for other pids)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running lab daemon (not a zombie, not a recycled pid)."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
            return _MODULE.encode() in (proc / "cmdline").read_bytes()
        except OSError:
            return False
    return True


def api_answers(kubeconfig: Path, timeout: float = 3.0) -> bool:
    """GET /readyz with the kubeconfig's CA and token: the API server is up and trusts us."""
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        request = urllib.request.Request(
            f"{cluster['server']}/readyz", headers={"Authorization": f"Bearer {user['token']}"}
        )
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (OSError, ValueError, KeyError, TypeError, IndexError, yaml.YAMLError, ssl.SSLError):
        return False


def running(name: str) -> LabState | None:
    state = LabState.read(lab_dir(name))
    if state is None or not process_alive(state.pid):
        return None
    return state


def up(
    name: str = "lab",
    *,
    kubeconfig: Path | None = None,
    timeout: float = 60.0,
    nodes: int = 1,
    faults: Sequence[str] = (),
) -> LabState:
    """Start lab ``name`` in the background (or return it if it already runs)."""
    directory = lab_dir(name)
    existing = running(name)
    if existing is not None:
        if api_answers(existing.kubeconfig):
            if (
                kubeconfig is not None
                and Path(kubeconfig).expanduser().resolve() != existing.kubeconfig.resolve()
            ):
                target = Path(kubeconfig).expanduser().resolve()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch(mode=0o600)
                target.write_bytes(existing.kubeconfig.read_bytes())
                return dataclasses.replace(existing, kubeconfig=target)
            return existing
        raise LabDaemonError(
            f"lab {name!r} runs (pid {existing.pid}) but its API does not answer; "
            f"stop it with `meshcheck lab down --name {name}` and start it again"
        )
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_FILE).unlink()
    command = [
        sys.executable,
        "-m",
        _MODULE,
        "run",
        "--name",
        name,
        "--state-dir",
        str(directory),
        "--nodes",
        str(nodes),
        "--faults",
        ",".join(faults),
    ]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(Path(kubeconfig).expanduser().resolve())]
    log_path = directory / LOG_FILE
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise LabDaemonError(
                f"lab {name!r} exited during start (code {child.returncode}); "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        state = LabState.read(directory)
        if state is not None and state.pid == child.pid and api_answers(state.kubeconfig):
            return state
        time.sleep(0.1)
    _stop_pid(child.pid, 10.0)
    raise LabDaemonError(
        f"lab {name!r} did not answer within {timeout:g}s; see {log_path}:\n{_tail(log_path)}"
    )


def down(name: str = "lab", *, timeout: float = 30.0) -> bool:
    """Stop lab ``name``; True when one was running. Idempotent."""
    directory = lab_dir(name)
    state = LabState.read(directory)
    was_running = state is not None and process_alive(state.pid)
    if state is not None and was_running:
        _stop_pid(state.pid, timeout)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_FILE).unlink()
    return was_running


def _stop_pid(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)


def status() -> list[tuple[str, LabState | None]]:
    """Every lab directory, with its state when its daemon is alive."""
    root = meshcheck_home() / "labs"
    if not root.is_dir():
        return []
    return [(entry.name, running(entry.name)) for entry in sorted(root.iterdir()) if entry.is_dir()]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the daemon process itself ------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    from pytest_meshcheck.lab.cluster import Lab

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    directory = Path(args.state_dir)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    faults = tuple(name for name in args.faults.split(",") if name)
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    lab = Lab(directory, args.name, nodes=args.nodes, faults=faults, kubeconfig=kubeconfig)
    lab.start()
    try:
        LabState(
            name=args.name,
            pid=os.getpid(),
            url=lab.url,
            kubeconfig=lab.kubeconfig,
            directory=directory,
            started=time.time(),
        ).write()
        logging.info("lab %s serving at %s (kubeconfig %s)", args.name, lab.url, lab.kubeconfig)
        while not stop.wait(1.0):
            pass
        logging.info("lab %s stopping", args.name)
    finally:
        lab.stop()
        with contextlib.suppress(FileNotFoundError):
            (directory / STATE_FILE).unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a lab in the foreground until SIGTERM")
    run.add_argument("--name", default="lab")
    run.add_argument("--state-dir", required=True)
    run.add_argument("--kubeconfig", default="")
    run.add_argument("--nodes", type=int, default=1)
    run.add_argument("--faults", default="", help="comma list of lab faults to inject")
    args = parser.parse_args(argv)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
