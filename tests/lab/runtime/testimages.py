"""Tiny workloads the runtime tests register under made-up image names."""

from __future__ import annotations

import http.server
import threading
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadContext, WorkloadFactory


class EchoServer:
    """Answers every GET with ``<pod name> <path>``; ``/healthz`` follows a switch the test holds."""

    healthy: dict[str, bool] = {}

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        ctx = self.ctx

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz" and not EchoServer.healthy.get(ctx.pod_name, True):
                    self.send_response(503)
                    self.end_headers()
                    return
                body = f"{ctx.pod_name} {self.path} {ctx.env.get('GREETING', '')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                ctx.log.write(f"{self.command} {self.path}")

        for port in self.ctx.ports or (8080,):
            server = http.server.ThreadingHTTPServer((self.ctx.bind_ip, port), Handler)
            server.daemon_threads = True
            self._servers.append(server)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            self._threads.append(thread)
            thread.start()
        self.ctx.log.write(f"listening on {self.ctx.bind_ip} ports {list(self.ctx.ports)}")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


class Completes:
    """A run-to-completion container (init containers, jobs): exits with the code in its args."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        self.ctx.log.write("starting")

    def run(self) -> int:
        return int(self.ctx.args[0]) if self.ctx.args else 0

    def stop(self) -> None:
        return None


class FailsToStart:
    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        raise RuntimeError("boom")

    def stop(self) -> None:
        return None


TEST_IMAGES: dict[str, WorkloadFactory] = {
    "example.test/echo": EchoServer,
    "example.test/completes": Completes,
    "example.test/crash": FailsToStart,
}


class CaptureSidecar:
    """Stands in for istio-proxy: records the PROXY header of each captured connection."""

    headers: list[str] = []

    def __init__(self, ctx: WorkloadContext) -> None:
        import socket

        self.ctx = ctx
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        from pytest_meshcheck.lab.contract import SIDECAR_OUTBOUND_PORT

        self._sock.bind((self.ctx.pod_ip, SIDECAR_OUTBOUND_PORT))
        self._sock.listen(16)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = conn.recv(1)
                    if not chunk:
                        break
                    data += chunk
                CaptureSidecar.headers.append(data.decode().strip())
                conn.sendall(b"captured\n")

    def stop(self) -> None:
        import contextlib
        import socket

        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)


TEST_IMAGES["example.test/sidecar"] = CaptureSidecar
