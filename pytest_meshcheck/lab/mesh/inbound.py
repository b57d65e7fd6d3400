"""The sidecar's inbound side: what iptables REDIRECT hands Envoy's virtualInbound listener.

Per app port: PeerAuthentication decides (STRICT resets plaintext, PERMISSIVE sniffs the TLS
ClientHello, DISABLE passes through); mutual TLS is terminated with the workload certificate and
the client's SPIFFE identity goes to the app in X-Forwarded-Client-Cert; HTTP is forwarded request
by request to the app on the pod's private address, TCP is relayed; the destination reporter's
metrics are recorded. The data-plane faults that live on the server side (``ratings-5xx``,
``slow-reviews``, ``mtls-not-enforced``) act here.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.httpframing import ProtocolError
from pytest_meshcheck.lab.mesh.config import DISABLE, PERMISSIVE, STRICT
from pytest_meshcheck.lab.mesh.httpio import (
    Connection,
    Request,
    Response,
    looks_like_http,
    read_request,
    read_response,
    simple_response,
)
from pytest_meshcheck.lab.mesh.netio import IDLE_TIMEOUT, relay, reset
from pytest_meshcheck.lab.mesh.peers import (
    PEER_METADATA_HEADER,
    PEER_METADATA_ID_HEADER,
    decode_peer,
    destination_service,
    peer_of,
    response_flags,
)
from pytest_meshcheck.lab.mesh.telemetry import DestinationService, Peer, request_labels, tcp_labels
from pytest_meshcheck.lab.mesh.workload_tls import peer_identity

if TYPE_CHECKING:
    from pytest_meshcheck.lab.mesh.proxy import ProxyAgent

#: How long a first read may take before a silent client is treated as opaque TCP.
SNIFF_TIMEOUT = 5.0
#: The fault catalogue's +400 ms on responses from reviews.
SLOW_REVIEWS_SECONDS = 0.4
_RESET_BODY = "upstream connect error or disconnect/reset before headers. reset reason: "
CONNECT_FAILURE_BODY = _RESET_BODY + "connection failure"
TERMINATION_BODY = _RESET_BODY + "connection termination"


class Inbound:
    """Inbound traffic of one sidecar."""

    def __init__(self, agent: ProxyAgent) -> None:
        self.agent = agent

    def mode(self, port: int) -> str:
        mode = self.agent.config.inbound_mtls_mode(self.agent.namespace, self.agent.labels, port)
        if mode == STRICT and "mtls-not-enforced" in self.agent.faults.active():
            return PERMISSIVE
        return mode

    def handler(self, port: int) -> Callable[[socket.socket, tuple[str, int]], None]:
        def handle(sock: socket.socket, peer: tuple[str, int]) -> None:
            self._inbound(sock, peer, port)

        return handle

    def _inbound(self, sock: socket.socket, peer: tuple[str, int], port: int) -> None:
        mode = self.mode(port)
        sock.settimeout(SNIFF_TIMEOUT)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            first = b""
        if not first and mode != STRICT:
            sock.settimeout(IDLE_TIMEOUT)
        is_tls = first == b"\x16"
        if mode == STRICT and not is_tls:
            reset(sock)
            return
        principal, cert_hash = "", ""
        stream: socket.socket = sock
        mutual = False
        if is_tls and mode != DISABLE:
            context = self.agent.tls.server_context
            if context is None:
                reset(sock)
                return
            try:
                stream = context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                reset(sock)
                return
            principal, cert_hash = peer_identity(stream)
            mutual = True
            with self.agent._state:
                self.agent._connections.add(stream)
        conn = Connection(stream)
        try:
            service_port = self._inbound_service_port(port)
            is_http = service_port.is_http if service_port is not None else False
            if service_port is None or not (service_port.is_http or service_port.is_opaque_tcp):
                try:
                    is_http = looks_like_http(conn.peek(4))
                except TimeoutError:
                    is_http = False
            stream.settimeout(IDLE_TIMEOUT)
            if is_http:
                self._inbound_http(conn, port, peer, mutual=mutual, principal=principal, cert_hash=cert_hash)
            else:
                self._inbound_tcp(conn, port, peer, mutual, principal)
        finally:
            with self.agent._state:
                self.agent._connections.discard(stream)
            conn.close()

    def _inbound_service_port(self, port: int) -> Any:
        found = self.agent.config.service_port_for_target(self.agent._self_workload(), port)
        return found[1] if found else None

    def _inbound_source(self, request: Request | None, mutual: bool, principal: str, peer_ip: str) -> Peer:
        header = request.header(PEER_METADATA_HEADER) if request is not None else None
        if header:
            decoded = decode_peer(header)
            if decoded is not None:
                return Peer(
                    **{**decoded.to_json(), "principal": principal if mutual and principal else "unknown"}
                )
        if mutual:
            workload = self.agent.config.workload_by_ip(peer_ip)
            if workload is not None:
                return peer_of(workload, principal or "unknown", self.agent.cluster_id)
            return Peer(principal=principal or "unknown")
        return Peer()

    def _inbound_service(self, request: Request | None, port: int) -> DestinationService:
        if request is not None and request.header("host"):
            service = self.agent.config.resolve_host(request.header("host") or "", self.agent.namespace)
            if service is not None:
                return destination_service(service)
        found = self.agent.config.service_port_for_target(self.agent._self_workload(), port)
        return destination_service(found[0] if found else None)

    def _inbound_http(
        self,
        conn: Connection,
        port: int,
        peer: tuple[str, int],
        *,
        mutual: bool,
        principal: str,
        cert_hash: str,
    ) -> None:
        upstream: Connection | None = None
        try:
            while not self.agent._stop.is_set():
                request = read_request(conn)
                if request is None:
                    return
                self.agent._begin()
                try:
                    started = time.monotonic()
                    source = self._inbound_source(request, mutual, principal, peer[0])
                    service = self._inbound_service(request, port)
                    request.remove_header(PEER_METADATA_HEADER)
                    request.remove_header(PEER_METADATA_ID_HEADER)
                    if mutual:
                        xfcc = f'By={self.agent.tls.spiffe_id};Hash={cert_hash};Subject="";URI={principal}'
                        previous = request.header("x-forwarded-client-cert")
                        request.set_header(
                            "x-forwarded-client-cert", f"{previous},{xfcc}" if previous else xfcc
                        )
                    else:
                        request.remove_header("x-forwarded-client-cert")
                    request.set_header("x-forwarded-proto", "https" if mutual else "http")
                    if not request.header("x-request-id"):
                        request.set_header("x-request-id", str(uuid.uuid4()))
                    flags: list[str] = []
                    if "ratings-5xx" in self.agent.faults.active() and self.agent._is("ratings"):
                        response = simple_response(503, "fault filter abort")
                        flags.append("FI")
                    else:
                        response, upstream = self._to_app(request, port, upstream, flags)
                    if "slow-reviews" in self.agent.faults.active() and self.agent._is("reviews"):
                        # the injected regression itself: reviews answers 400 ms later
                        time.sleep(SLOW_REVIEWS_SECONDS)
                    response.set_header("server", "istio-envoy")
                    destination = self.agent.self_peer(self.agent.tls.spiffe_id if mutual else "unknown")
                    if not self.agent._missing_edge(source, destination):
                        labels = request_labels(
                            reporter="destination",
                            source=source,
                            destination=destination,
                            service=service,
                            protocol="http",
                            response_code=response.status,
                            response_flags=response_flags(flags),
                            mutual_tls=mutual,
                        )
                        self.agent.metrics.record_request(
                            labels,
                            duration_ms=(time.monotonic() - started) * 1000.0,
                            request_bytes=request.wire_size(),
                            response_bytes=response.wire_size(),
                        )
                    keep = request.keep_alive and not self.agent.draining
                    if not keep:
                        response.set_header("connection", "close")
                    conn.send(response.encode(head_only=request.method == "HEAD"))
                finally:
                    self.agent._end()
                if not keep:
                    return
        finally:
            if upstream is not None:
                upstream.close()

    def _to_app(
        self, request: Request, port: int, upstream: Connection | None, flags: list[str]
    ) -> tuple[Response, Connection | None]:
        for attempt in range(2):
            fresh = upstream is None
            if upstream is None:
                try:
                    upstream = Connection(
                        socket.create_connection((self.agent.ctx.local_ip, port), timeout=10)
                    )
                except OSError:
                    flags.append("UF")
                    body = CONNECT_FAILURE_BODY
                    return simple_response(503, body), None
                upstream.sock.settimeout(IDLE_TIMEOUT)
                upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                upstream.send(request.encode())
                response = read_response(upstream, request.method)
            except (OSError, ProtocolError):
                upstream.close()
                upstream = None
                if fresh or attempt:
                    flags.append("UC")
                    body = TERMINATION_BODY
                    return simple_response(503, body), None
                continue
            if not response.keep_alive:
                upstream.close()
                upstream = None
            return response, upstream
        raise AssertionError("unreachable")

    def _inbound_tcp(
        self, conn: Connection, port: int, peer: tuple[str, int], mutual: bool, principal: str
    ) -> None:
        source = self._inbound_source(None, mutual, principal, peer[0])
        destination = self.agent.self_peer(self.agent.tls.spiffe_id if mutual else "unknown")
        record = not self.agent._missing_edge(source, destination)
        labels = tcp_labels(
            reporter="destination",
            source=source,
            destination=destination,
            service=self._inbound_service(None, port),
            response_flags="-",
            mutual_tls=mutual,
        )
        try:
            app = socket.create_connection((self.agent.ctx.local_ip, port), timeout=10)
        except OSError:
            return
        app.settimeout(IDLE_TIMEOUT)
        if record:
            self.agent.metrics.tcp_opened(labels)
        received, sent = relay(conn.sock, app, conn.buffer)
        app.close()
        if record:
            self.agent.metrics.tcp_closed(labels, sent=sent, received=received)
