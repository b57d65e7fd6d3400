"""The Prometheus image in the lab: the real ``prometheus`` server, configured from the pod.

The container's arguments are honoured as the image's entrypoint would take them, with the
paths a pod would have mapped to the host: the config file is read from the pod's ConfigMap
volume and translated (``promconfig``: Kubernetes discovery via the workload's HTTP SD endpoint),
the TSDB lives in a temporary directory (the pod's emptyDir), and the server listens on the pod's
address. If no ``prometheus`` binary is installed the container fails to start, saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from pytest_meshcheck.lab.addons.mounts import read_mounted_file, store_of
from pytest_meshcheck.lab.addons.processes import ChildProcess
from pytest_meshcheck.lab.addons.promconfig import translate
from pytest_meshcheck.lab.addons.sdserver import DiscoveryServer, DiscoverySource
from pytest_meshcheck.lab.contract import WorkloadContext

#: Repositories served by this workload (any tag).
IMAGES = ("prom/prometheus", "docker.io/prom/prometheus", "quay.io/prometheus/prometheus")
DEFAULT_PORT = 9090
#: The image's defaults (its Dockerfile's CMD), used when the pod gives no arguments.
DEFAULT_CONFIG = "/etc/prometheus/prometheus.yml"
DEFAULT_RETENTION = "1h"
#: How long ``start`` waits for the server to listen (or to exit with an error).
LISTEN_TIMEOUT = 30.0
#: How often Prometheus re-reads the lab's discovery endpoint.
SD_REFRESH = "2s"

_REPLACED_FLAGS = ("--config.file", "--storage.tsdb.path", "--web.listen-address")


class PrometheusBinaryMissing(RuntimeError):
    """No ``prometheus`` executable on PATH: the container cannot start."""


def _flags(args: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """``--name=value`` and ``--name value`` as a mapping, and the other arguments in order."""
    values: dict[str, str] = {}
    others: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, sep, value = arg.partition("=")
        if name in _REPLACED_FLAGS or name == "--storage.tsdb.retention.time":
            if not sep and index + 1 < len(args):
                value = args[index + 1]
                index += 1
            values[name] = value
        else:
            others.append(arg)
        index += 1
    return values, others


def listen_port(address: str) -> int:
    """The port of a ``--web.listen-address`` value (``:9090``, ``0.0.0.0:9091``)."""
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() else DEFAULT_PORT


class PrometheusWorkload:
    """The real Prometheus server as a lab container."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self._process: ChildProcess | None = None
        self._sd: DiscoveryServer | None = None
        self._workdir: Path | None = None
        values, self._extra_args = _flags(tuple(ctx.args))
        self.config_path = values.get("--config.file", DEFAULT_CONFIG)
        self.port = listen_port(values.get("--web.listen-address", f":{DEFAULT_PORT}"))
        self.retention = values.get("--storage.tsdb.retention.time", DEFAULT_RETENTION)

    @property
    def address(self) -> str:
        return f"{self.ctx.bind_ip}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusBinaryMissing(
                'exec: "prometheus": executable file not found in $PATH (the lab runs the real '
                "Prometheus server: install the Debian package 'prometheus' or put a prometheus "
                "binary on PATH)"
            )
        store = store_of(self.ctx)
        text = read_mounted_file(self.ctx, self.config_path, store)
        try:
            self._sd = DiscoveryServer(self.ctx.bind_ip, DiscoverySource(store))
            self._sd.start()
            translated = translate(
                text,
                sd_base_url=self._sd.base_url,
                pod_ip=self.ctx.bind_ip,
                own_namespace=self.ctx.namespace,
                refresh_interval=SD_REFRESH,
            )
            self._sd.specs = translated.discoveries
            self._workdir = Path(tempfile.mkdtemp(prefix=f"prometheus-{self.ctx.pod_name}-"))
            config_file = self._workdir / "prometheus.yml"
            config_file.write_text(translated.text)
            data = self._workdir / "data"
            data.mkdir()
            argv = [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={data}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address={self.address}",
                *self._extra_args,
            ]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._workdir)}
            self._process = ChildProcess(argv, self.ctx.log, env=env)
            self._process.start()
            self._await_listening()
        except BaseException:
            self.stop()
            raise

    def _await_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while time.monotonic() < deadline and not self.ctx.stopping.is_set():
            code = self._process.exit_code()
            if code is not None:
                self._process.stop()
                detail = "; ".join(self._process.tail()[-3:])
                raise RuntimeError(f"prometheus exited with code {code} during start: {detail}")
            try:
                with socket.create_connection((self.ctx.bind_ip, self.port), timeout=1.0):
                    return
            except OSError:
                self._process.wait(0.1)
        raise RuntimeError(f"prometheus did not listen on {self.address} within {LISTEN_TIMEOUT:.0f}s")

    def run(self) -> int:
        """Block until the server exits: the container's exit code is the server's."""
        while self._process is not None:
            code = self._process.wait(0.5)
            if code is not None:
                return code
            if self.ctx.stopping.is_set():
                return self._process.stop() or 0
        return 0

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        if self._sd is not None:
            self._sd.stop()
            self._sd = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def prometheus_factory(ctx: WorkloadContext) -> PrometheusWorkload:
    return PrometheusWorkload(ctx)
