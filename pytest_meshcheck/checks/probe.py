"""Requests made from inside the cluster: ``curl`` exec'd in a probe pod, in or out of the mesh.

A client outside the mesh (no sidecar) is how a plaintext request is made under STRICT mTLS; a
client inside it gets mTLS from its sidecar. Both are real pods, reached through ``pods/exec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.kube.client import Kube, translated
from pytest_meshcheck.kube.exec import exec_in_pod

#: Marker separating the response from curl's -w trailer.
_TRAILER = "\n__meshcheck_status__:"


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What curl saw: the status (0 when no HTTP response came back), headers, body, exit code."""

    status: int
    body: str
    exit_code: int
    headers: dict[str, str] = field(default_factory=dict)
    stderr: str = ""
    source: str = ""

    @property
    def connected(self) -> bool:
        return self.status != 0


class Probe:
    """Runs curl from the probe pods the ``probes`` layer installed."""

    def __init__(self, kube: Kube, *, namespaces: dict[str, str], timeout: float = 30.0) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.timeout = timeout

    def _pod(self, where: str) -> tuple[str, str]:
        namespace = self.namespaces.get(where)
        if namespace is None:
            raise EnvironmentProblem(f"no probe namespace {where!r}; known: {', '.join(self.namespaces)}")
        with translated(f"finding the curl probe in {namespace}"):
            pods = self.kube.core.list_namespaced_pod(namespace, label_selector="app=curl").items
        running = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
        if not running:
            raise EnvironmentProblem(f"no running curl probe pod in {namespace}")
        return namespace, running[0].metadata.name

    def curl(
        self,
        url: str,
        *,
        where: str = "in_mesh",
        headers: dict[str, str] | None = None,
        max_time: float = 10.0,
    ) -> ProbeResult:
        namespace, pod = self._pod(where)
        command = ["curl", "-sS", "-i", "--max-time", f"{max_time:g}", "-w", _TRAILER + "%{http_code}"]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        command.append(url)
        result = exec_in_pod(
            self.kube, namespace, pod, command, container="curl", timeout=self.timeout + max_time
        )
        output, _, code = result.stdout.rpartition(_TRAILER)
        status = int(code.strip()) if code.strip().isdigit() else 0
        head, _, body = output.partition("\r\n\r\n")
        parsed: dict[str, str] = {}
        for line in head.split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                parsed[name.strip().lower()] = value.strip()
        return ProbeResult(
            status=status,
            body=body,
            exit_code=result.exit_code,
            headers=parsed,
            stderr=result.stderr,
            source=f"{namespace}/{pod}",
        )
