"""pilot-agent's and Envoy's own ports on a proxy, and the ``pilot-agent`` exec command.

15021 ``/healthz/ready`` (ready once config and certificate arrived; the kubelet's probe), 15020
merged ``/stats/prometheus`` (agent + Envoy, Istio's metrics merging) and ``/app-health/...`` (app
probes rewritten by the injector), 15090 Envoy's ``/stats/prometheus``, and the admin API on the
pod-local 15000 (``/server_info``, ``/stats/prometheus``, ``/ready``, ``/quitquitquit`` ...) that
``pilot-agent request GET <path>`` reaches from ``kubectl exec``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.httpframing import ProtocolError
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.mesh.httpio import Connection, read_response
from pytest_meshcheck.lab.mesh.injector import ENVOY_PROM_PORT, HEALTH_PORT, STATUS_PORT

if TYPE_CHECKING:
    from pytest_meshcheck.lab.mesh.proxy import ProxyAgent

ADMIN_PORT = 15000
Route = Callable[[str, str], tuple[int, str, str]]


class AgentPorts:
    """The agent's HTTP endpoints of one proxy."""

    def __init__(self, agent: ProxyAgent) -> None:
        self.agent = agent
        self._servers: list[HttpServer] = []

    def start(self) -> None:
        ctx = self.agent.ctx
        self._serve_http((ctx.pod_ip, HEALTH_PORT), self._health_routes())
        self._serve_http((ctx.pod_ip, STATUS_PORT), self._status_routes())
        self._serve_http((ctx.pod_ip, ENVOY_PROM_PORT), self._envoy_stats_routes())
        self._serve_http((ctx.local_ip, ADMIN_PORT), self._admin_routes())

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []

    def _serve_http(self, address: tuple[str, int], routes: Mapping[str, Route]) -> None:
        def handle(request: Request) -> Response:
            path = request.path
            route = routes.get(path)
            if route is None:
                route = next((routes[p] for p in routes if p.endswith("/") and path.startswith(p)), None)
            if route is None:
                status, body, ctype = 404, "not found\n", "text/plain"
            else:
                status, body, ctype = route(request.method, request.target)
            return Response(status=status, headers=[("content-type", ctype)], body=body.encode())

        # the lab's server, not http.server's: stopping it closes the connections scrapers and
        # probes keep alive, as a pod's end does, so nobody is answered by a proxy that is gone
        server = HttpServer(address[0], address[1], handle, name=f"agent-{address[1]}")
        server.start()
        self._servers.append(server)

    def _ready_route(self, method: str, path: str) -> tuple[int, str, str]:
        del method, path
        if self.agent.ready:
            return 200, "", "text/plain"
        return 503, "not ready\n", "text/plain"

    def _health_routes(self) -> dict[str, Route]:
        return {"/healthz/ready": self._ready_route}

    def envoy_stats(self) -> str:
        lines = [
            "# TYPE envoy_server_live gauge",
            f"envoy_server_live {1 if not self.agent.draining else 0}",
            "# TYPE envoy_server_state gauge",
            f"envoy_server_state {0 if self.agent.ready else 1}",
        ]
        return "\n".join(lines) + "\n" + self.agent.metrics.render()

    def merged_stats(self) -> str:
        """What 15020 serves: the agent's own metrics followed by Envoy's (Istio's metrics merging)."""
        agent = [
            "# TYPE istio_build gauge",
            f'istio_build{{component="proxy",tag="{self.agent.version}"}} 1',
        ]
        return "\n".join(agent) + "\n" + self.envoy_stats()

    def _status_routes(self) -> dict[str, Route]:
        return {
            "/stats/prometheus": lambda m, p: (200, self.merged_stats(), "text/plain; version=0.0.4"),
            "/healthz/ready": self._ready_route,
            "/app-health/": self._app_health,
        }

    def _envoy_stats_routes(self) -> dict[str, Route]:
        return {"/stats/prometheus": lambda m, p: (200, self.envoy_stats(), "text/plain; version=0.0.4")}

    def _app_health(self, method: str, path: str) -> tuple[int, str, str]:
        """pilot-agent's probe rewriting: run the app's original probe against its local port."""
        del method
        probers_text = self.agent.ctx.env.get("ISTIO_KUBE_APP_PROBERS", "") or "{}"
        try:
            probers = json.loads(probers_text)
        except ValueError:
            return 500, "bad ISTIO_KUBE_APP_PROBERS\n", "text/plain"
        probe = probers.get(path.split("?", 1)[0])
        if probe is None:
            return 404, "no such probe\n", "text/plain"
        timeout = float(probe.get("timeoutSeconds", 1) or 1)
        if "tcpSocket" in probe:
            port = self._probe_port(probe["tcpSocket"].get("port"))
            try:
                socket.create_connection((self.agent.ctx.local_ip, port), timeout=timeout).close()
            except OSError:
                return 503, "", "text/plain"
            return 200, "", "text/plain"
        get = probe.get("httpGet", {})
        port = self._probe_port(get.get("port"))
        try:
            conn = Connection(socket.create_connection((self.agent.ctx.local_ip, port), timeout=timeout))
            conn.send(
                f"GET {get.get('path', '/')} HTTP/1.1\r\nHost: {self.agent.ctx.local_ip}:{port}\r\n"
                "User-Agent: kube-probe/1.32\r\nConnection: close\r\n\r\n".encode()
            )
            response = read_response(conn, "GET")
            conn.close()
        except (OSError, ProtocolError):
            return 503, "", "text/plain"
        return (200 if 200 <= response.status < 400 else response.status), "", "text/plain"

    def _probe_port(self, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return self.agent._self_workload().named_ports.get(str(port), 0)

    def server_info(self) -> dict[str, Any]:
        return {
            "version": f"istio-lab-envoy/{self.agent.version}/Clean/RELEASE/BoringSSL",
            "state": "LIVE" if not self.agent.draining else "DRAINING",
            "command_line_options": {
                "service_node": f"{'router' if self.agent.router else 'sidecar'}~{self.agent.ctx.pod_ip}"
            },
            "node": {
                "id": self.agent.node_id,
                "metadata": {"ISTIO_VERSION": self.agent.version, "CLUSTER_ID": self.agent.cluster_id},
            },
            "istio": {"configVersion": self.agent.config.version, "certificate": self.agent.tls.spiffe_id},
        }

    def _admin_routes(self) -> dict[str, Route]:
        return {
            "/server_info": lambda m, p: (200, json.dumps(self.server_info(), indent=2), "application/json"),
            "/stats/prometheus": lambda m, p: (200, self.envoy_stats(), "text/plain; version=0.0.4"),
            "/ready": lambda m, p: (
                (200, "LIVE\n", "text/plain")
                if self.agent.ready
                else (503, "PRE_INITIALIZING\n", "text/plain")
            ),
            "/config_dump": lambda m, p: (
                200,
                json.dumps({"configs": [], "version": self.agent.config.version}),
                "application/json",
            ),
            "/listeners": lambda m, p: (
                200,
                "\n".join(f"0.0.0.0_{port}" for port in self.agent.listening_ports()) + "\n",
                "text/plain",
            ),
            "/healthcheck/fail": self._fail_health,
            "/quitquitquit": self._quit,
        }

    def _fail_health(self, method: str, path: str) -> tuple[int, str, str]:
        if method != "POST":
            return 405, "use POST\n", "text/plain"
        self.agent.health_failed = True
        return 200, "OK\n", "text/plain"

    def _quit(self, method: str, path: str) -> tuple[int, str, str]:
        if method != "POST":
            return 405, "use POST\n", "text/plain"
        threading.Thread(target=self.agent.stop, daemon=True).start()
        return 200, "OK\n", "text/plain"

    def admin_request(self, method: str, path: str) -> tuple[int, str]:
        path = "/" + path.lstrip("/")
        routes = self._admin_routes()
        handler = routes.get(path.split("?", 1)[0])
        if handler is None:
            return 404, "invalid path\n"
        status, body, _ = handler(method, path)
        return status, body

    def pilot_agent(self, argv: list[str], stdin: Any, stdout: Any, stderr: Any) -> int:
        del stdin
        args = argv[1:] if argv and argv[0].endswith("pilot-agent") else list(argv)
        if args[:1] == ["request"] and len(args) >= 3:
            status, body = self.admin_request(args[1].upper(), args[2])
            stdout.write(body.encode())
            if status >= 400:
                stderr.write(f"Error: received unexpected status {status}\n".encode())
                return 1
            return 0
        if args[:1] == ["version"]:
            if "--short" in args or "-s" in args:
                stdout.write(f"{self.agent.version}\n".encode())
            else:
                version = self.agent.version
                stdout.write(
                    f'version.BuildInfo{{Version:"{version}", GitRevision:"lab", GolangVersion:"", '
                    f'BuildStatus:"Clean", GitTag:"{version}"}}\n'.encode()
                )
            return 0
        stderr.write(b"Usage: pilot-agent request <METHOD> <PATH> | pilot-agent version [--short]\n")
        return 64
