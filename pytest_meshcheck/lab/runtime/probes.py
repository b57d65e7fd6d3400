"""Container probes (readiness, liveness, startup) with the kubelet's timing rules.

A ``ProbeTracker`` holds one probe's schedule and its consecutive success/failure counts; the pod
worker asks it when the probe is due, runs it with ``run_probe`` and feeds the result back. The
result flips only after ``successThreshold`` / ``failureThreshold`` consecutive results, as the
kubelet's prober does.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Runs ``argv`` in the container; returns the exit code (the exec probe's verdict).
ExecRunner = Callable[[list[str], float], int]


def resolve_port(port: Any, container_ports: Mapping[str, int]) -> int:
    """A probe or service port may name a container port; resolve it to a number."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    if text in container_ports:
        return container_ports[text]
    raise ValueError(f"port {text!r} is not a named container port")


def run_probe(
    probe: Mapping[str, Any],
    *,
    pod_ip: str,
    source_ip: str,
    container_ports: Mapping[str, int],
    exec_runner: ExecRunner,
) -> str:
    """One probe attempt: "" on success, else the failure as the kubelet words it in its
    ``Unhealthy`` events (refused, timeout, bad status, non-zero exit all fail)."""
    timeout = float(probe.get("timeoutSeconds", 1) or 1)
    target = ""
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"]
            port = resolve_port(spec.get("port"), container_ports)
            target = f"http://{spec.get('host') or pod_ip}:{port}{spec.get('path') or '/'}"
            status = _http_probe(spec, pod_ip, source_ip, port, timeout)
            return "" if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            port = resolve_port(spec.get("port"), container_ports)
            target = f"{spec.get('host') or pod_ip}:{port}"
            with socket.create_connection(
                (spec.get("host") or pod_ip, port), timeout=timeout, source_address=(source_ip, 0)
            ):
                return ""
        if "exec" in probe:
            command = [str(arg) for arg in probe["exec"].get("command", [])]
            code = exec_runner(command, timeout)
            return "" if code == 0 else f"command {command!r} exited with {code}"
        if "grpc" in probe:
            port = int(probe["grpc"].get("port", 0))
            target = f"{pod_ip}:{port}"
            with socket.create_connection((pod_ip, port), timeout=timeout, source_address=(source_ip, 0)):
                return ""
    except TimeoutError:
        return f'Get "{target}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except ConnectionRefusedError:
        return f'Get "{target}": dial tcp {target.split("//")[-1].split("/")[0]}: connect: connection refused'
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f'Get "{target}": {exc}'
    return ""


def _http_probe(
    spec: Mapping[str, Any],
    pod_ip: str,
    source_ip: str,
    port: int,
    timeout: float,
) -> int:
    host = spec.get("host") or pod_ip
    connection: http.client.HTTPConnection
    if str(spec.get("scheme", "HTTP")).upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context, source_address=(source_ip, 0)
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source_ip, 0))
    headers = {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    for header in spec.get("httpHeaders") or []:
        headers[str(header.get("name"))] = str(header.get("value", ""))
    try:
        connection.request("GET", str(spec.get("path") or "/"), headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    return int(status)


@dataclass
class ProbeTracker:
    """Schedule and hysteresis of one probe on one container instance."""

    spec: Mapping[str, Any]
    started_at: float
    #: The value before the first verdict: readiness starts False, liveness/startup start True
    #: (liveness) / False (startup).
    result: bool
    successes: int = 0
    failures: int = 0
    next_due: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.next_due = self.started_at + float(self.spec.get("initialDelaySeconds", 0) or 0)

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10) or 10)

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def record(self, ok: bool, now: float) -> bool:
        """Feed one attempt's outcome; returns True when the probe's verdict changed."""
        self.next_due = now + self.period
        before = self.result
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.spec.get("successThreshold", 1) or 1):
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= int(self.spec.get("failureThreshold", 3) or 3):
                self.result = False
        return before != self.result


def earliest(trackers: Sequence[ProbeTracker | None], default: float) -> float:
    dues = [tracker.next_due for tracker in trackers if tracker is not None]
    return min([*dues, default])
