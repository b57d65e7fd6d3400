"""The official Locust image (``locustio/locust``), running the real Locust.

A lab container is a Python object, but a load generator must be the real thing: the workload
starts ``<this interpreter> -m locust`` as a child process of the lab with the container's
arguments and environment, sends its output to the container log, and ends with Locust's exit
code, so a Job running it completes or fails as it would on a node. What the image's file system
and network would give a real container is mapped onto the lab's machine:

- paths under a volume mount (``-f /mnt/locust/load.py``) point into the runtime's projection of
  that volume (see ``lab/runtime/volumes.py``);
- host names in ``--host``/``-H`` and ``--master-host`` are resolved with the pod's cluster DNS
  (the child process cannot ask the lab's DNS itself); the lab's kube-proxy serves ClusterIPs on
  real loopback sockets, so the child connects to them directly;
- a master binds its worker port on the pod's address, as it would inside its network namespace.

The image's entrypoint is ``locust``; a ``command`` naming it is accepted and dropped. ``kill``
is offered to ``exec`` (``sh -c 'kill -TERM 1'``) for the container's main process, which is how
a client stops a running Locust early and still gets its final report in the log.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_meshcheck.lab.contract import ExecHandler, WorkloadContext

#: Variables of the lab's own environment a Python child needs; the rest is the container's.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
_URL_OPTIONS = ("-H", "--host")
_HOST_OPTIONS = ("--master-host",)
#: Seconds Locust gets after SIGTERM to print its report before it is killed.
_STOP_GRACE_S = 10.0


class LocustWorkload:
    """One Locust process (standalone, master or worker) for one container."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = ""
        self._lock = threading.Lock()

    # -- the command line ----------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The child's argv: the image entrypoint's arguments, mapped onto the lab's machine."""
        command = list(self.ctx.command)
        if command and os.path.basename(command[0]) == "locust":
            command = command[1:]
        if command:
            raise ValueError(f"the lab's Locust image runs only `locust`, not {self.ctx.command!r}")
        args = [self._paths(arg) for arg in self.ctx.args]
        for index, arg in enumerate(args[:-1]):
            if arg in _URL_OPTIONS:
                args[index + 1] = self._resolve_url(args[index + 1])
            elif arg in _HOST_OPTIONS:
                args[index + 1] = self.ctx.resolver.resolve(args[index + 1], self.ctx.namespace)
        for index, arg in enumerate(args):
            option, equals, value = arg.partition("=")
            if equals and option in _URL_OPTIONS:
                args[index] = f"{option}={self._resolve_url(value)}"
            elif equals and option in _HOST_OPTIONS:
                args[index] = f"{option}={self.ctx.resolver.resolve(value, self.ctx.namespace)}"
        if "--master" in args and not any(a.startswith("--master-bind-host") for a in args):
            args += ["--master-bind-host", self.ctx.bind_ip]
        return [sys.executable, "-m", "locust", *args]

    def _paths(self, arg: str) -> str:
        for mount, directory in sorted(self.ctx.volumes.items(), key=lambda item: -len(item[0])):
            pattern = rf"(?<![\w./-]){re.escape(mount.rstrip('/'))}(?=/|,|$)"
            arg = re.sub(pattern, directory.replace("\\", "\\\\"), arg)
        return arg

    def _resolve_url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            return url
        address = self.ctx.resolver.resolve(parts.hostname, self.ctx.namespace)
        netloc = address if parts.port is None else f"{address}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def environment(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        env.update(self.ctx.env)
        env.setdefault("HOME", self._workdir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        argv = self.argv()
        self._workdir = tempfile.mkdtemp(prefix=f"lab-locust-{self.ctx.pod_name}-")
        self.ctx.log.write(f"lab: running {' '.join(argv[1:])}")
        self._process = subprocess.Popen(
            argv,
            cwd=self._workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self) -> int:
        """Copy the output to the container log until Locust exits; its exit code is the container's."""
        process = self._process
        if process is None or process.stdout is None:
            return 1
        for raw in process.stdout:
            self.ctx.log.write(raw.decode("utf-8", "replace").rstrip("\n"))
        return process.wait()

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5.0)
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def signal(self, sig: signal.Signals) -> None:
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)

    # -- exec ------------------------------------------------------------------------------------

    def exec_commands(self) -> Mapping[str, ExecHandler]:
        return {"kill": self._kill}

    def _kill(self, argv: list[str], stdin: Any, stdout: Any, stderr: Any) -> int:
        """``kill [-SIGNAL] 1``: signal the container's main process (the only one there is)."""
        sig = signal.SIGTERM
        targets = []
        for arg in argv[1:]:
            if arg.startswith("-") and len(arg) > 1:
                name = arg[1:].upper()
                try:
                    sig = (
                        signal.Signals(int(name))
                        if name.isdigit()
                        else signal.Signals["SIG" + name.removeprefix("SIG")]
                    )
                except (KeyError, ValueError):
                    stderr.write(f"kill: invalid signal specification {arg}\n".encode())
                    return 1
            else:
                targets.append(arg)
        if targets != ["1"]:
            stderr.write(f"kill: ({' '.join(targets) or 'no pid'}) - No such process\n".encode())
            return 1
        self.signal(sig)
        return 0


def locust_factory(ctx: WorkloadContext) -> LocustWorkload:
    return LocustWorkload(ctx)
