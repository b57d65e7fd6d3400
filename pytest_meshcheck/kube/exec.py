"""Running a command in a container, the way ``kubectl exec`` does (WebSocket channels)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytest_meshcheck.errors import ReadinessTimeout
from pytest_meshcheck.kube.client import Kube, translated


@dataclass(frozen=True, kw_only=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int


def exec_in_pod(
    kube: Kube,
    namespace: str,
    pod: str,
    command: list[str],
    *,
    container: str = "",
    timeout: float = 60.0,
) -> ExecResult:
    """Run ``command`` and return its output and exit code (a non-zero exit is a result, not an error).

    The stream helper of the kubernetes client swaps the request method of the API client it is
    given, so each exec gets a client of its own to stay safe beside other threads.
    """
    from kubernetes import client
    from kubernetes.stream import stream

    api = client.CoreV1Api(client.ApiClient(kube.api_client.configuration))
    kwargs: dict[str, object] = {
        "command": command,
        "stdout": True,
        "stderr": True,
        "stdin": False,
        "tty": False,
    }
    if container:
        kwargs["container"] = container
    action = f"exec {' '.join(command)!r} in {namespace}/{pod}" + (f" [{container}]" if container else "")
    with translated(action):
        response = stream(
            api.connect_get_namespaced_pod_exec, pod, namespace, _preload_content=False, **kwargs
        )
        stdout: list[str] = []
        stderr: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while response.is_open():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReadinessTimeout(
                        action,
                        timeout_s=timeout,
                        last_state="command still running",
                        evidence={"stdout so far": "".join(stdout), "stderr so far": "".join(stderr)},
                    )
                response.update(timeout=min(1.0, remaining))
                if response.peek_stdout():
                    stdout.append(response.read_stdout())
                if response.peek_stderr():
                    stderr.append(response.read_stderr())
            code = response.returncode
        finally:
            response.close()
    return ExecResult(
        stdout="".join(stdout), stderr="".join(stderr), exit_code=int(code if code is not None else -1)
    )
