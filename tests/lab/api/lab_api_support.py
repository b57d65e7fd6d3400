"""Helpers for the lab API server tests: a fake node runtime and a handle on a running lab API
server with both clients (real kubectl and the Python kubernetes client) pointed at it."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pytest_meshcheck.lab.apiserver import ApiServer, Writer
from pytest_meshcheck.lab.errors import BadRequest, NotFound
from pytest_meshcheck.lab.store import GVR, Store

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class FakeRuntime:
    """A node runtime that knows three commands and serves canned logs.

    ``echo ARGS`` prints them, ``cat`` copies stdin to stdout, ``fail N`` writes to stderr and
    exits N, ``wait-stdin`` blocks until stdin closes. Logs are ``line-0`` .. ``line-N``; a follow
    keeps emitting ``tick-i`` lines until told to stop, and records that it was stopped."""

    def __init__(self) -> None:
        self.follow_stopped = threading.Event()
        self.exec_finished = threading.Event()
        self.log_lines = [f"line-{i}" for i in range(5)]
        #: Whether a follow keeps producing output (False: a follow that waits silently).
        self.follow_ticks = True
        #: Whether containers are still waiting to start (logs fail on first read).
        self.waiting = False

    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool,
        tail_lines: int | None,
        previous: bool,
        timestamps: bool,
        stop: threading.Event,
    ) -> Iterator[bytes]:
        if previous:
            raise BadRequest(f'previous terminated container "{container}" in pod "{pod}" not found')
        lines = [f"{container}:{line}" for line in self.log_lines]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines else []
        return self._stream(lines, follow, stop)

    def _stream(self, lines: list[str], follow: bool, stop: threading.Event) -> Iterator[bytes]:
        if self.waiting:  # raised on first read, as a generator-based kubelet does
            raise BadRequest('container "app" in pod "runner" is waiting to start: ContainerCreating')
        try:
            for line in lines:
                yield (line + "\n").encode()
            tick = 0
            while follow and not stop.wait(0.05):
                if self.follow_ticks:
                    yield f"tick-{tick}\n".encode()
                    tick += 1
        finally:
            if follow and stop.is_set():
                self.follow_stopped.set()

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: list[str],
        *,
        stdin: BinaryIO | None,
        stdout: Writer,
        stderr: Writer,
        tty: bool,
    ) -> int:
        try:
            if command[0] == "echo":
                stdout.write((" ".join(command[1:]) + "\n").encode())
                return 0
            if command[0] == "cat":
                assert stdin is not None
                while chunk := stdin.read(1024):
                    stdout.write(chunk)
                return 0
            if command[0] == "fail":
                stderr.write(b"failing on purpose\n")
                return int(command[1])
            if command[0] == "wait-stdin":
                assert stdin is not None
                while stdin.read(1024):
                    pass
                return 0
            if command[0] == "whoami":
                stdout.write(f"{namespace}/{pod}/{container}\n".encode())
                return 0
            raise NotFound(f'executable file not found in $PATH: "{command[0]}"')
        finally:
            self.exec_finished.set()


@dataclass
class Lab:
    store: Store
    server: ApiServer
    runtime: FakeRuntime
    kubeconfig: Path
    ca_file: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.store.create(GVR.core("namespaces"), {"metadata": {"name": name}})
        return name

    def wait_until(self, predicate: Any, timeout: float = 10.0, message: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {message}")


class WebhookServer:
    """A tiny HTTPS admission webhook: ``decide(review_request) -> response fields``."""

    def __init__(self, host: str, decide: Any, *, dns_names: tuple[str, ...] = ()) -> None:
        import http.server
        import json as json_module
        import ssl

        from pytest_meshcheck.lab.pki import CertificateAuthority

        self.ca = CertificateAuthority("webhook-test-ca")
        pair = self.ca.issue("webhook", dns_names=dns_names, ip_addresses=(host,))
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                review = json_module.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.append(review)
                answer = {"uid": review["request"]["uid"], **decide(review["request"])}
                body = json_module.dumps(
                    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            cert, key = pair.write(Path(tmp), "hook")
            context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()

    @property
    def ca_bundle(self) -> str:
        import base64

        return base64.b64encode(self.ca.cert_pem).decode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
