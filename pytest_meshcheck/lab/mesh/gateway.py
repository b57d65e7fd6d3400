"""The ingress gateway's listeners: one per port its Gateways' servers name, plain or TLS.

An HTTPS server (``tls.mode`` SIMPLE, or MUTUAL with a ``ca.crt``) terminates TLS with its
``credentialName`` secret, chosen by SNI among the servers sharing the port; requests are then
routed by the VirtualServices bound to the Gateway whose hosts match, and the ``gateway-404`` fault
drops every route (Envoy answers 404 NR).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_meshcheck.lab.mesh.config import GatewayServer, RequestInfo, RouteTarget, gateway_host_allowed
from pytest_meshcheck.lab.mesh.httpio import Connection
from pytest_meshcheck.lab.mesh.netio import reset
from pytest_meshcheck.lab.mesh.workload_tls import server_context_from_pem

if TYPE_CHECKING:
    from pytest_meshcheck.lab.mesh.proxy import ProxyAgent

TLS_TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL"})


class GatewayListeners:
    def __init__(self, agent: ProxyAgent) -> None:
        self.agent = agent
        self._lock = threading.Lock()
        self._tls: dict[int, ssl.SSLContext] = {}

    def reconcile(self) -> None:
        """Open listeners for the ports the current config names, close the others, and refresh
        the TLS credentials of HTTPS ports."""
        agent = self.agent
        servers = agent.config.gateway_servers(agent.namespace, agent.labels)
        wanted = {s.listen_port for s in servers}
        contexts: dict[int, ssl.SSLContext] = {}
        for port in wanted:
            context = self._tls_context([s for s in servers if s.listen_port == port])
            if context is not None:
                contexts[port] = context
        with self._lock:
            self._tls = contexts
        agent.close_listeners_except(wanted)
        for port in sorted(wanted):
            try:
                agent.listen(port, self.handler(port))
            except OSError as exc:
                agent.log(f"gateway listener {port}: {exc}")

    def _server_context(self, server: GatewayServer) -> ssl.SSLContext | None:
        if server.tls_mode not in TLS_TERMINATING_MODES or not server.credential_name:
            return None
        config = self.agent.config
        data = config.gateway_credential(self.agent.namespace, server.credential_name)
        if data is None:
            self.agent.log(f"gateway credential {server.credential_name} not found")
            return None
        cert = data.get("tls.crt") or data.get("cert")
        key = data.get("tls.key") or data.get("key")
        if not cert or not key:
            return None
        client_ca = None
        if server.tls_mode == "MUTUAL":
            extra = config.gateway_credential(self.agent.namespace, f"{server.credential_name}-cacert") or {}
            client_ca = data.get("ca.crt") or data.get("cacert") or extra.get("ca.crt") or extra.get("cacert")
        try:
            return server_context_from_pem(cert, key, client_ca)
        except (ssl.SSLError, ValueError) as exc:
            self.agent.log(f"gateway credential {server.credential_name}: {exc}")
            return None

    def _tls_context(self, servers: list[GatewayServer]) -> ssl.SSLContext | None:
        by_server = [(s, c) for s in servers if (c := self._server_context(s)) is not None]
        if not by_server:
            return None
        default = by_server[0][1]

        def choose(sock: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
            for server, context in by_server:
                if server_name and gateway_host_allowed(server.hosts, server_name):
                    sock.context = context
                    return

        default.sni_callback = choose
        return default

    def handler(self, listen_port: int) -> Callable[[socket.socket, tuple[str, int]], None]:
        def handle(sock: socket.socket, peer: tuple[str, int]) -> None:
            with self._lock:
                context = self._tls.get(listen_port)
            stream: socket.socket = sock
            if context is not None:
                try:
                    stream = context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    reset(sock)
                    return
            self.agent.serve_downstream_http(
                Connection(stream), peer, lambda info: self.route(info, listen_port), port=listen_port
            )

        return handle

    def route(self, info: RequestInfo, listen_port: int) -> RouteTarget | None:
        agent = self.agent
        if "gateway-404" in agent.faults.active():
            return None
        for server in agent.config.gateway_servers(agent.namespace, agent.labels):
            if server.listen_port != listen_port or not gateway_host_allowed(server.hosts, info.authority):
                continue
            target = agent.config.route_http(
                info,
                service=None,
                source_namespace=agent.namespace,
                source_labels=agent.labels,
                gateway=server.gateway,
                rng=agent.rng,
            )
            if target is not None:
                return target
        return None
