"""Sending one routed HTTP request upstream, as Envoy's router filter does.

VirtualService faults (delay, abort), direct responses, rewrites and header sets; then endpoint
choice, TLS origination (auto mTLS or the DestinationRule's mode, and the ``plaintext-hop`` fault),
per-try and route timeouts, retries with Istio's defaults, connection reuse per downstream
connection, and Envoy's response flags (NR, UH, UF, UC, UT, URX, FI, DI) for telemetry.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_meshcheck.lab.httpframing import ProtocolError
from pytest_meshcheck.lab.mesh.config import (
    ISTIO_MUTUAL,
    TLS_DISABLE,
    TLS_MUTUAL,
    TLS_SIMPLE,
    Endpoint,
    RetryPolicy,
    RouteTarget,
)
from pytest_meshcheck.lab.mesh.httpio import (
    Connection,
    Request,
    Response,
    read_response,
    simple_response,
)
from pytest_meshcheck.lab.mesh.inbound import CONNECT_FAILURE_BODY, TERMINATION_BODY
from pytest_meshcheck.lab.mesh.netio import IDLE_TIMEOUT
from pytest_meshcheck.lab.mesh.peers import PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER, encode_peer
from pytest_meshcheck.lab.mesh.workload_tls import peer_identity

if TYPE_CHECKING:
    from pytest_meshcheck.lab.mesh.proxy import ProxyAgent

#: Upstream connections kept per downstream connection: (ip, port, tls mode) -> (conn, principal).
ConnectionPool = dict[tuple[str, int, str], tuple[Connection, str]]


class UpstreamConnectError(Exception):
    """The upstream refused or could not complete the (TLS) connection."""


@dataclass
class Exchange:
    """One request's outcome on the client side, for the response and the metrics."""

    response: Response
    flags: list[str] = field(default_factory=list)
    target: RouteTarget | None = None
    endpoint: Endpoint | None = None
    mutual_tls: bool = False
    destination_principal: str = "unknown"


class Upstream:
    """The client side of one proxy."""

    def __init__(self, agent: ProxyAgent) -> None:
        self.agent = agent

    def tls_mode(self, target: RouteTarget, endpoint: Endpoint) -> str:
        mode = self.agent.config.upstream_tls_mode(target, endpoint, self.agent.namespace)
        destination_app = endpoint.workload.app
        if (
            "plaintext-hop" in self.agent.faults.active()
            and self.agent._is("reviews", "v2")
            and destination_app == "ratings"
        ):
            return TLS_DISABLE
        return mode

    def connect(self, endpoint: Endpoint, mode: str, timeout: float | None) -> tuple[Connection, str]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.agent.ctx.pod_ip, 0))
            sock.settimeout(timeout if timeout is not None else 10.0)
            sock.connect(endpoint.address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise UpstreamConnectError(str(exc)) from exc
        principal = "unknown"
        if mode in (ISTIO_MUTUAL, TLS_MUTUAL, TLS_SIMPLE):
            context = self.agent.tls.client_context
            if mode == TLS_SIMPLE:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if context is None:
                sock.close()
                raise UpstreamConnectError("no workload certificate yet")
            try:
                wrapped = context.wrap_socket(sock)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise UpstreamConnectError(str(exc)) from exc
            if mode != TLS_SIMPLE:
                principal = peer_identity(wrapped)[0] or "unknown"
            sock = wrapped
        sock.settimeout(timeout if timeout is not None else IDLE_TIMEOUT)
        return Connection(sock), principal

    def _send(
        self,
        pool: ConnectionPool,
        endpoint: Endpoint,
        mode: str,
        request: Request,
        timeout: float | None,
    ) -> tuple[Response, str]:
        key = (endpoint.workload.ip, endpoint.port, mode)
        for attempt in range(2):
            pooled = pool.pop(key, None)
            if pooled is None:
                upstream, principal = self.connect(endpoint, mode, timeout)
            else:
                upstream, principal = pooled
                upstream.sock.settimeout(timeout if timeout is not None else IDLE_TIMEOUT)
            try:
                upstream.send(request.encode())
                response = read_response(upstream, request.method)
            except TimeoutError:
                upstream.close()
                raise
            except (OSError, ProtocolError):
                upstream.close()
                if pooled is not None and attempt == 0:
                    continue  # a kept-alive connection the upstream had closed: reconnect once
                raise
            if response.keep_alive:
                pool[key] = (upstream, principal)
            else:
                upstream.close()
            return response, principal
        raise AssertionError("unreachable")

    def forward(
        self,
        request: Request,
        target: RouteTarget | None,
        pool: ConnectionPool,
    ) -> Exchange:
        if target is None:
            return Exchange(simple_response(404, ""), ["NR"])
        route = target.route
        flags: list[str] = []
        if route is not None and route.delay_seconds and self.agent.rng.random() * 100 < route.delay_percent:
            self.agent._stop.wait(route.delay_seconds)  # the VirtualService's injected delay
            flags.append("DI")
        if route is not None and route.abort_status and self.agent.rng.random() * 100 < route.abort_percent:
            return Exchange(simple_response(route.abort_status, "fault filter abort"), [*flags, "FI"], target)
        if route is not None and route.direct_status is not None:
            return Exchange(simple_response(route.direct_status, ""), flags, target)
        if target.service is None and target.workload is None:
            return Exchange(simple_response(503, "no healthy upstream"), [*flags, "UH"], target)
        if route is not None:
            if route.rewrite_uri is not None:
                path, sep, query = request.target.partition("?")
                prefix = route.matched_prefix
                rest = path[len(prefix) :] if prefix is not None and path.startswith(prefix) else ""
                rewritten = route.rewrite_uri + rest if prefix is not None else route.rewrite_uri
                request.target = rewritten + (sep + query if sep else "")
            for name, value in route.request_headers_set.items():
                request.set_header(name, value)
        request.set_header(PEER_METADATA_HEADER, encode_peer(self.agent.self_peer()))
        request.set_header(
            PEER_METADATA_ID_HEADER,
            self.agent.node_id,
        )
        retries = route.retries if route is not None else RetryPolicy()
        deadline = time.monotonic() + route.timeout if route is not None and route.timeout else None
        attempts = 0
        exchange = Exchange(simple_response(503, "no healthy upstream"), [*flags, "UH"], target)
        while True:
            endpoint = self.agent.config.pick_endpoint(target, self.agent.namespace)
            if endpoint is None:
                return Exchange(simple_response(503, "no healthy upstream"), [*flags, "UH"], target)
            mode = self.tls_mode(target, endpoint)
            remaining = None if deadline is None else deadline - time.monotonic()
            per_try = retries.per_try_timeout
            timeout = (
                per_try if remaining is None else (remaining if per_try is None else min(per_try, remaining))
            )
            mutual = mode in (ISTIO_MUTUAL, TLS_MUTUAL)
            try:
                response, principal = self._send(pool, endpoint, mode, request, timeout)
            except UpstreamConnectError:
                body = CONNECT_FAILURE_BODY
                exchange = Exchange(simple_response(503, body), [*flags, "UF"], target, endpoint, mutual)
                if attempts < retries.attempts and retries.retries_connect_failure():
                    attempts += 1
                    continue
                if attempts:
                    exchange.flags.append("URX")
                return exchange
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline - 0.001:
                    return Exchange(
                        simple_response(504, "upstream request timeout"),
                        [*flags, "UT"],
                        target,
                        endpoint,
                        mutual,
                    )
                if attempts < retries.attempts:
                    attempts += 1
                    continue
                return Exchange(
                    simple_response(504, "upstream request timeout"), [*flags, "UT"], target, endpoint, mutual
                )
            except (OSError, ProtocolError, ssl.SSLError):
                body = TERMINATION_BODY
                exchange = Exchange(simple_response(503, body), [*flags, "UC"], target, endpoint, mutual)
                if attempts < retries.attempts and "reset" in retries.retry_on:
                    attempts += 1
                    continue
                return exchange
            exchange = Exchange(
                response, list(flags), target, endpoint, mutual, principal if mutual else "unknown"
            )
            if retries.retries_status(response.status) and attempts < retries.attempts:
                attempts += 1
                continue
            if attempts and retries.retries_status(response.status):
                exchange.flags.append("URX")
            return exchange
