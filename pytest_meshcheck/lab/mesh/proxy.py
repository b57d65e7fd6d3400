"""The proxyv2 container: pilot-agent plus Envoy, as the lab runs them.

As a sidecar (``proxy sidecar``) it owns the pod IP on the app's ports (inbound) and the capture
port 15001 (outbound, PROXY protocol v1 gives the original destination; see lab/contract.py):
- inbound (``inbound.py``) enforces PeerAuthentication, terminates mTLS and hands requests to the
  app on the pod's private address with X-Forwarded-Client-Cert;
- outbound (here) reads the original destination, routes each HTTP request by VirtualService and
  DestinationRule and sends it upstream (``upstream.py``: faults, retries, timeouts, TLS
  origination from the pod IP); non-HTTP is relayed, addresses unknown to the mesh pass through.
As a gateway (``proxy router``) it listens on the ports its Gateways' servers name and routes by the
VirtualServices bound to them. Both report Istio's standard metrics (``telemetry.py``) and serve
the agent's ports (``agent_ports.py``).

This module owns the lifecycle: config and certificates from istiod (``discovery.py``), listeners,
identity, and Envoy's drain on shutdown. Until config and a certificate arrived the proxy is not
ready; when istiod goes away it keeps serving with what it last received.

Config and certificates come from istiod (``discovery.py``); until both arrived the proxy is not
ready, and when istiod goes away the proxy keeps serving with what it last received.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pytest_meshcheck.lab.contract import SIDECAR_OUTBOUND_PORT, ExecHandler, WorkloadContext
from pytest_meshcheck.lab.httpframing import MAX_HEAD_BYTES, ProtocolError
from pytest_meshcheck.lab.mesh.agent_ports import ADMIN_PORT, AgentPorts
from pytest_meshcheck.lab.mesh.ca import (
    DEFAULT_GRACE_RATIO,
    CertificateRotator,
    IssuedCertificate,
    build_csr,
    issued_from_pem,
    spiffe_id,
)
from pytest_meshcheck.lab.mesh.config import (
    ISTIO_MUTUAL,
    TLS_MUTUAL,
    MeshConfig,
    MeshService,
    MeshWorkload,
    RequestInfo,
    RouteTarget,
)
from pytest_meshcheck.lab.mesh.discovery import (
    XDS_PLAINTEXT_PORT,
    ControlPlane,
    ControlPlaneError,
    IstiodClient,
    parse_address,
)
from pytest_meshcheck.lab.mesh.gateway import GatewayListeners
from pytest_meshcheck.lab.mesh.httpio import (
    Connection,
    Request,
    looks_like_http,
    read_request,
)
from pytest_meshcheck.lab.mesh.inbound import SNIFF_TIMEOUT, Inbound
from pytest_meshcheck.lab.mesh.injector import (
    ENVOY_PROM_PORT,
    HEALTH_PORT,
    STATUS_PORT,
    canonical_name,
    canonical_revision,
    pod_workload_name,
)
from pytest_meshcheck.lab.mesh.netio import (
    IDLE_TIMEOUT,
    Listener,
    parse_proxy_v1,
    relay,
    reset,
    shutdown_quietly,
)
from pytest_meshcheck.lab.mesh.peers import destination_service, peer_of, response_flags
from pytest_meshcheck.lab.mesh.sources import FaultSource, NoFaults, faults_of
from pytest_meshcheck.lab.mesh.telemetry import (
    DestinationService,
    IstioMetrics,
    Peer,
    request_labels,
    tcp_labels,
)
from pytest_meshcheck.lab.mesh.upstream import ConnectionPool, Exchange, Upstream, UpstreamConnectError
from pytest_meshcheck.lab.mesh.workload_tls import WorkloadTLS

#: Ports the proxy itself uses; never captured as app ports.
PROXY_PORTS = frozenset(
    {ADMIN_PORT, SIDECAR_OUTBOUND_PORT, 15004, 15006, 15008, STATUS_PORT, HEALTH_PORT, 15053, ENVOY_PROM_PORT}
)
#: Envoy's drain on shutdown (``terminationDrainDuration``, 5s by default).
DEFAULT_DRAIN_SECONDS = 5.0
#: A drain ends early once no connection has been open for this long: long enough for kube-proxy
#: and the gateways to have stopped sending new connections to a terminating pod.
DRAIN_QUIET_SECONDS = 1.0
CONTROL_PLANE_CONTEXT_KEY = "mesh-control-plane"


class ProxyAgent:
    """One istio-proxy container (sidecar or router)."""

    def __init__(
        self,
        ctx: WorkloadContext,
        *,
        control_plane: ControlPlane | None = None,
        faults: FaultSource | None = None,
        rng: random.Random | None = None,
        drain_seconds: float = DEFAULT_DRAIN_SECONDS,
        config_wait: float = 10.0,
        grace_ratio: float = DEFAULT_GRACE_RATIO,
    ) -> None:
        self.ctx = ctx
        self.router = "router" in ctx.args
        self.version = ctx.image_tag or "unknown"
        self.namespace = ctx.namespace
        self.labels = dict(ctx.labels)
        self.workload_name = pod_workload_name(ctx.pod) if ctx.pod else ctx.pod_name
        self.cluster_id = ctx.env.get("ISTIO_META_CLUSTER_ID", "Kubernetes") or "Kubernetes"
        self.trust_domain = ctx.env.get("TRUST_DOMAIN", "cluster.local") or "cluster.local"
        self.principal = spiffe_id(ctx.namespace, ctx.service_account or "default", self.trust_domain)
        self.faults = faults or faults_of(ctx.services) or NoFaults()
        self.control_plane = control_plane or self._default_control_plane()
        self.metrics = IstioMetrics()
        self.tls = WorkloadTLS()
        self.rng = rng or random.Random()
        self.drain_seconds = drain_seconds
        self.config_wait = config_wait
        self.config = MeshConfig.empty()
        self.config_received = threading.Event()
        self._config_changed = threading.Condition()
        self.rotator = CertificateRotator(
            self._fetch_certificate, grace_ratio=grace_ratio, on_rotate=self._install_certificate
        )
        self._stop = threading.Event()
        self._draining = threading.Event()
        #: Set once shutdown stopped accepting connections (drain has begun).
        self.listeners_closed = threading.Event()
        self._listeners: dict[int, Listener] = {}
        self._listeners_lock = threading.Lock()
        self.inbound = Inbound(self)
        self.upstream = Upstream(self)
        self.ports = AgentPorts(self)
        self.gateway = GatewayListeners(self)
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._inflight = 0
        self._state = threading.Condition()
        self.health_failed = False

    # --- wiring --------------------------------------------------------------------------------
    def _default_control_plane(self) -> ControlPlane:
        override = self.ctx.services.get(CONTROL_PLANE_CONTEXT_KEY)
        if override is not None:
            return override  # type: ignore[no-any-return]
        proxy_config = {}
        with contextlib.suppress(ValueError):
            proxy_config = json.loads(self.ctx.env.get("PROXY_CONFIG", "") or "{}")
        ca_addr = (
            self.ctx.env.get("CA_ADDR")
            or proxy_config.get("discoveryAddress")
            or "istiod.istio-system.svc:15012"
        )
        host, _ = parse_address(str(ca_addr), XDS_PLAINTEXT_PORT)

        def address() -> tuple[str, int]:
            return self.ctx.resolver.resolve(host, self.ctx.namespace), XDS_PLAINTEXT_PORT

        return IstiodClient(
            address,
            proxy_id=f"{self.ctx.pod_name}.{self.ctx.namespace}",
            proxy_version=self.version,
            proxy_type="router" if self.router else "sidecar",
        )

    def _install_certificate(self, issued: IssuedCertificate) -> None:
        self.tls.install(issued)
        with self._config_changed:
            self._config_changed.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """Block until config and certificate arrived (what ``/healthz/ready`` reports)."""
        with self._config_changed:
            return self._config_changed.wait_for(lambda: self.ready, timeout=timeout)

    def wait_for_config(self, version: int, timeout: float) -> bool:
        """Block until config of at least ``version`` is applied."""
        with self._config_changed:
            return self._config_changed.wait_for(lambda: self.config.version >= version, timeout=timeout)

    def _fetch_certificate(self) -> IssuedCertificate:
        key_pem, csr_pem = build_csr(self.namespace, self.ctx.service_account or "default", self.trust_domain)
        cert_pem, root_pem = self.control_plane.sign(
            csr_pem=csr_pem,
            namespace=self.namespace,
            pod=self.ctx.pod_name,
            service_account=self.ctx.service_account or "default",
        )
        return issued_from_pem(key_pem, cert_pem, root_pem)

    def log(self, message: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.ctx.log.write(f"{stamp}\tinfo\t{message}")

    def app_ports(self) -> list[int]:
        """The ports of the pod's other containers: what iptables would redirect to the sidecar."""
        spec = (self.ctx.pod or {}).get("spec", {}) or {}
        containers = list(spec.get("containers", []) or [])
        containers += [c for c in spec.get("initContainers", []) or [] if c.get("restartPolicy") == "Always"]
        ports: list[int] = []
        for container in containers:
            if container.get("name") == self.ctx.container_name:
                continue
            for port in container.get("ports", []) or []:
                number = int(port.get("containerPort", 0))
                if number and number not in PROXY_PORTS and number not in ports:
                    ports.append(number)
        return ports

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.log(f"Istio proxy {self.version} starting as {'router' if self.router else 'sidecar'}")
        self.ports.start()
        if not self.router:
            self.listen(SIDECAR_OUTBOUND_PORT, self._outbound_connection)
            for port in self.app_ports():
                self.listen(port, self.inbound.handler(port))
        for target, name in ((self._config_loop, "config"), (self._certificate_loop, "certs")):
            thread = threading.Thread(target=target, name=f"proxy-{name}-{self.ctx.pod_name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Envoy's shutdown. Healthy: a graceful drain, as pilot-agent asks of Envoy on SIGTERM:
        listeners stay open (a load balancer or kube-proxy that has not yet seen the endpoint go
        still gets served), every response says ``Connection: close`` so clients move on, and the
        drain ends when nothing has been connected for ``DRAIN_QUIET_SECONDS`` or after the drain
        time; then the listeners close. Under ``upgrade-drops`` listeners close at once and open
        connections are reset."""
        self._draining.set()
        if "upgrade-drops" in self.faults.active():
            self._close_listeners()
            with self._state:
                doomed = list(self._connections)
            for sock in doomed:
                reset(sock)
        else:
            self._drain_gracefully()
            self._close_listeners()
            with self._state:
                idle = list(self._connections)
            for sock in idle:
                shutdown_quietly(sock)
        self._stop.set()
        self.ports.stop()
        # the config thread may sit in a long poll to istiod; it exits when that returns
        for thread in self._threads:
            if "config" not in thread.name:
                thread.join(timeout=5.0)
        self.tls.close()

    def _close_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.close()
        self.listeners_closed.set()

    def _drain_gracefully(self) -> None:
        deadline = time.monotonic() + self.drain_seconds
        quiet_since: float | None = None
        with self._state:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                if self._inflight or self._connections:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= DRAIN_QUIET_SECONDS:
                    return
                self._state.wait(timeout=0.05)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def ready(self) -> bool:
        return (
            self.config_received.is_set()
            and self.tls.certificate is not None
            and not self._draining.is_set()
            and not self.health_failed
        )

    def _config_loop(self) -> None:
        since = -1
        failures = 0
        while not self._stop.is_set():
            try:
                document = self.control_plane.fetch_config(since=since, wait=self.config_wait)
            except ControlPlaneError as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    self.log(f"config: {exc}")
                # istiod is away: keep the last config, try again after a short back-off
                self._stop.wait(min(5.0, 0.1 * failures))
                continue
            failures = 0
            if document is None:
                continue
            self.apply_config(document)
            since = int(document.get("version", 0))

    def apply_config(self, document: Mapping[str, Any]) -> None:
        self.config = MeshConfig(
            document.get("objects", {}),
            root_namespace=str(document.get("rootNamespace", "istio-system")),
            trust_domain=self.trust_domain,
            version=int(document.get("version", 0)),
        )
        if self.router:
            self.gateway.reconcile()
        self.config_received.set()
        with self._config_changed:
            self._config_changed.notify_all()

    def _certificate_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.rotator.refresh_if_due()
            except (ControlPlaneError, ValueError, KeyError) as exc:
                self.log(f"certificate: {exc}")
                self._stop.wait(1.0)
                continue
            self._stop.wait(max(0.05, self.rotator.seconds_until_due()))

    # --- listeners ------------------------------------------------------------------------------
    def listen(self, port: int, handler: Callable[[socket.socket, tuple[str, int]], None]) -> None:
        def tracked(sock: socket.socket, peer: tuple[str, int]) -> None:
            with self._state:
                self._connections.add(sock)
            try:
                handler(sock, peer)
            except (OSError, ProtocolError, ssl.SSLError):
                pass
            finally:
                with self._state:
                    self._connections.discard(sock)
                    self._state.notify_all()
                with contextlib.suppress(OSError):
                    sock.close()

        with self._listeners_lock:
            if port in self._listeners or self._draining.is_set():
                return
            self._listeners[port] = Listener(
                (self.ctx.pod_ip, port), tracked, name=f"{self.ctx.pod_name}:{port}"
            )

    def close_listeners_except(self, ports: set[int]) -> None:
        with self._listeners_lock:
            stale = [p for p in self._listeners if p not in ports]
            closing = [self._listeners.pop(p) for p in stale]
        for listener in closing:
            listener.close()

    def listening_ports(self) -> list[int]:
        with self._listeners_lock:
            return sorted(self._listeners)

    def _begin(self) -> None:
        with self._state:
            self._inflight += 1

    def _end(self) -> None:
        with self._state:
            self._inflight -= 1
            self._state.notify_all()

    # --- identity -------------------------------------------------------------------------------
    def _self_workload(self) -> MeshWorkload:
        found = self.config.workload(self.namespace, self.ctx.pod_name)
        if found is not None:
            return found
        return MeshWorkload(
            pod_name=self.ctx.pod_name,
            namespace=self.namespace,
            ip=self.ctx.pod_ip,
            labels=self.labels,
            service_account=self.ctx.service_account,
            workload_name=self.workload_name,
            named_ports={},
            ports=tuple(self.app_ports()),
            ready=True,
        )

    def self_peer(self, principal: str | None = None) -> Peer:
        return Peer(
            workload=self.workload_name,
            workload_namespace=self.namespace,
            principal=principal if principal is not None else self.principal,
            app=self.labels.get("app", "unknown") or "unknown",
            version=self.labels.get("version", "unknown") or "unknown",
            canonical_service=canonical_name(self.labels, self.workload_name),
            canonical_revision=canonical_revision(self.labels),
            cluster=self.cluster_id,
        )

    def _is(self, app: str, version: str | None = None) -> bool:
        if self.labels.get("app") != app:
            return False
        return version is None or self.labels.get("version") == version

    def _missing_edge(self, source: Peer, destination: Peer) -> bool:
        """The ``missing-edge`` fault: reviews-v3 -> ratings telemetry is not recorded."""
        if "missing-edge" not in self.faults.active():
            return False
        return source.app == "reviews" and source.version == "v3" and destination.app == "ratings"

    # --- inbound --------------------------------------------------------------------------------

    # --- outbound -------------------------------------------------------------------------------
    def _outbound_connection(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        sock.settimeout(SNIFF_TIMEOUT)
        conn = Connection(sock)
        line = conn.readline(MAX_HEAD_BYTES)
        if not line:
            return
        try:
            _src, _sport, dst, dport = parse_proxy_v1(line.rstrip(b"\r\n"))
        except ValueError:
            reset(sock)
            return
        config = self.config
        service = config.service_by_ip(dst)
        workload = None if service is not None else config.workload_by_ip(dst)
        if (service is None and workload is None) or (service is not None and not service.selector):
            # unknown to the mesh, or a Service without a selector (``kubernetes``, hand-made
            # Endpoints): straight through to where the app was going
            sock.settimeout(IDLE_TIMEOUT)
            self._passthrough(conn, dst, dport)
            return
        service_port = service.port(dport) if service is not None else None
        if service_port is not None and (service_port.is_http or service_port.is_opaque_tcp):
            is_http = service_port.is_http
        else:
            try:
                is_http = looks_like_http(conn.peek(4))
            except TimeoutError:
                is_http = False
        sock.settimeout(IDLE_TIMEOUT)
        if service is None and workload is not None:
            target = RouteTarget(service=None, port=dport, workload=workload)
        else:
            target = RouteTarget(service=service, port=dport)
        if is_http:
            self.serve_downstream_http(
                conn, peer, lambda request: self._route_mesh(request, service, target), port=dport
            )
        else:
            self._outbound_tcp(conn, target)

    def _route_mesh(
        self, request: RequestInfo, service: MeshService | None, direct: RouteTarget
    ) -> RouteTarget | None:
        if service is None:
            return direct
        return self.config.route_http(
            request,
            service=service,
            source_namespace=self.namespace,
            source_labels=self.labels,
            rng=self.rng,
        )

    def serve_downstream_http(
        self,
        conn: Connection,
        peer: tuple[str, int],
        route: Callable[[RequestInfo], RouteTarget | None],
        *,
        port: int | None = None,
    ) -> None:
        pool: ConnectionPool = {}
        try:
            while not self._stop.is_set():
                request = read_request(conn)
                if request is None:
                    return
                self._begin()
                try:
                    started = time.monotonic()
                    if not request.header("x-request-id"):
                        request.set_header("x-request-id", str(uuid.uuid4()))
                    if self.router:
                        request.set_header("x-forwarded-for", peer[0])
                        request.set_header("x-forwarded-proto", "http")
                    request_bytes = request.wire_size()
                    info = RequestInfo(
                        authority=request.header("host") or "",
                        path=request.target,
                        method=request.method,
                        headers={k: v for k, v in request.headers},
                        port=port if port is not None else _authority_port(request),
                    )
                    target = route(info)
                    exchange = self.upstream.forward(request, target, pool)
                    self._record_source(exchange, request_bytes, started)
                    keep = request.keep_alive and not self._draining.is_set()
                    if not keep:
                        exchange.response.set_header("connection", "close")
                    if self.router:
                        exchange.response.set_header("server", "istio-envoy")
                    conn.send(exchange.response.encode(head_only=request.method == "HEAD"))
                finally:
                    self._end()
                if not keep:
                    return
        finally:
            for upstream, _ in pool.values():
                upstream.close()

    def _record_source(self, exchange: Exchange, request_bytes: int, started: float) -> None:
        target, endpoint = exchange.target, exchange.endpoint
        source = self.self_peer()
        if endpoint is not None:
            destination = peer_of(endpoint.workload, exchange.destination_principal, self.cluster_id)
        else:
            destination = Peer()
        if self._missing_edge(source, destination):
            return
        service = target.service if target is not None else None
        if service is None and endpoint is not None:
            found = self.config.service_port_for_target(endpoint.workload, endpoint.port)
            service = found[0] if found else None
        labels = request_labels(
            reporter="source",
            source=source,
            destination=destination,
            service=destination_service(service),
            protocol="http",
            response_code=exchange.response.status,
            response_flags=response_flags(exchange.flags),
            mutual_tls=exchange.mutual_tls,
        )
        self.metrics.record_request(
            labels,
            duration_ms=(time.monotonic() - started) * 1000.0,
            request_bytes=request_bytes,
            response_bytes=exchange.response.wire_size(),
        )

    def _outbound_tcp(self, conn: Connection, target: RouteTarget) -> None:
        endpoint = self.config.pick_endpoint(target, self.namespace)
        if endpoint is None:
            reset(conn.sock)
            return
        mode = self.upstream.tls_mode(target, endpoint)
        try:
            upstream, principal = self.upstream.connect(endpoint, mode, 10.0)
        except UpstreamConnectError:
            reset(conn.sock)
            return
        upstream.sock.settimeout(IDLE_TIMEOUT)
        mutual = mode in (ISTIO_MUTUAL, TLS_MUTUAL)
        source = self.self_peer()
        destination = peer_of(endpoint.workload, principal if mutual else "unknown", self.cluster_id)
        record = not self._missing_edge(source, destination)
        service = target.service
        if service is None:
            found = self.config.service_port_for_target(endpoint.workload, endpoint.port)
            service = found[0] if found else None
        labels = tcp_labels(
            reporter="source",
            source=source,
            destination=destination,
            service=destination_service(service),
            response_flags="-",
            mutual_tls=mutual,
        )
        if record:
            self.metrics.tcp_opened(labels)
        received, sent = relay(conn.sock, upstream.sock, conn.buffer)
        upstream.close()
        if record:
            self.metrics.tcp_closed(labels, sent=sent, received=received)

    def _passthrough(self, conn: Connection, host: str, port: int) -> None:
        """Traffic to addresses the mesh does not know (Istio's PassthroughCluster)."""
        try:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.bind((self.ctx.pod_ip, 0))
            upstream.settimeout(10)
            upstream.connect((host, port))
            upstream.settimeout(IDLE_TIMEOUT)
        except OSError:
            reset(conn.sock)
            return
        labels = tcp_labels(
            reporter="source",
            source=self.self_peer(),
            destination=Peer(),
            service=DestinationService(host="PassthroughCluster", name="PassthroughCluster"),
            response_flags="-",
            mutual_tls=False,
        )
        self.metrics.tcp_opened(labels)
        received, sent = relay(conn.sock, upstream, conn.buffer)
        upstream.close()
        self.metrics.tcp_closed(labels, sent=sent, received=received)

    @property
    def node_id(self) -> str:
        """Envoy's node id as pilot-agent builds it: ``<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local``."""
        kind = "router" if self.router else "sidecar"
        ns = self.namespace
        return f"{kind}~{self.ctx.pod_ip}~{self.ctx.pod_name}.{ns}~{ns}.svc.cluster.local"

    # --- exec -----------------------------------------------------------------------------------
    def exec_commands(self) -> Mapping[str, ExecHandler]:
        return {"pilot-agent": self.ports.pilot_agent}


def _authority_port(request: Request) -> int:
    host, _, port = (request.header("host") or "").rpartition(":")
    return int(port) if host and port.isdigit() else 80


def proxy_workload(ctx: WorkloadContext) -> ProxyAgent:
    """The ``WorkloadFactory`` for proxyv2 images."""
    return ProxyAgent(ctx)
