"""What every HTTP sample app in the lab has in common: listeners, access log, outbound calls.

The sample apps listen on the port their real image listens on, whatever ``containerPort`` the
manifest declares (Kubernetes treats that field as documentation; a manifest that gets it wrong
fails on a real cluster too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response, common_log_line
from pytest_meshcheck.lab.workloads.outbound import OutboundClient

#: A stopping workload keeps serving until no request has come for this long (its peers have
#: stopped sending to it) ...
DRAIN_QUIET_SECONDS = 1.0
#: ... or for at most this long (within the pod's termination grace period).
DRAIN_TIMEOUT_SECONDS = 5.0

#: Headers the Bookinfo services copy from an incoming request to the calls it causes, so traces
#: join up and header-based routing (``end-user``) works; the union of the upstream apps' lists.
TRACE_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "end-user",
)


def forwarded_headers(request: Request) -> list[tuple[str, str]]:
    wanted = set(TRACE_HEADERS)
    return [(name, value) for name, value in request.headers if name.lower() in wanted]


def json_response(payload: Any, status: int = 200, *, indent: int | None = None) -> Response:
    text = json.dumps(payload, indent=indent)
    if indent is not None:
        text += "\n"
    return Response(
        status=status,
        headers=[("Content-Type", "application/json")],
        body=text.encode(),
    )


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status=status, headers=[("Content-Type", content_type)], body=text.encode())


def env_value(ctx: WorkloadContext, name: str, default: str) -> str:
    value = ctx.env.get(name)
    return default if value is None or value == "" else value


def env_port(ctx: WorkloadContext, name: str, default: int) -> int:
    """A port from the env (``RATINGS_SERVICE_PORT`` ...), the default when unset or not a number."""
    value = ctx.env.get(name, "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else default


class HttpWorkload:
    """A workload serving ``handle`` on ``ports`` of the container's ``bind_ip``."""

    #: The name the workload's access log lines carry (the real apps' logger names differ).
    server_name = "http"

    def __init__(self, ctx: WorkloadContext, ports: tuple[int, ...]) -> None:
        self.ctx = ctx
        self.ports = ports
        self.client = OutboundClient(ctx.dialer, user_agent=self.user_agent())
        self._servers: list[HttpServer] = []

    def user_agent(self) -> str:
        return "python-requests/2.32.3"

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def start(self) -> None:
        try:
            for port in self.ports:
                server = HttpServer(
                    self.ctx.bind_ip, port, self.handle, name=self.server_name, access_log=self._log
                )
                server.start()
                self._servers.append(server)
        except OSError:
            self.stop()
            raise
        ports = ",".join(str(port) for port in self.ports)
        self.ctx.log.write(f"{self.server_name} listening on {self.ctx.bind_ip}:{ports}")

    def stop(self) -> None:
        """Shut down like a service with a SIGTERM handler: drain first (serve what still arrives
        while peers learn the endpoint is gone, finish in-flight requests and their calls), then
        cut what is left and close."""
        for server in self._servers:
            server.drain(quiet_s=DRAIN_QUIET_SECONDS, timeout=DRAIN_TIMEOUT_SECONDS)
        self.client.abort_all()
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def _log(self, request: Request, response: Response) -> None:
        self.ctx.log.write(common_log_line(request, response))


def image_version(ctx: WorkloadContext, known: Mapping[str, str], default: str) -> str:
    """The service version an image was built for (``reviews-v2`` -> ``v2``), env first."""
    explicit = ctx.env.get("SERVICE_VERSION")
    if explicit:
        return explicit
    repository = ctx.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    for suffix, version in known.items():
        if repository.endswith(suffix):
            return version
    return default
