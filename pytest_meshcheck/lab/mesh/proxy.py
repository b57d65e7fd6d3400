"""The proxyv2 container: pilot-agent plus Envoy, as the lab runs them.

As a sidecar (``proxy sidecar``) it owns the pod IP on the app's ports (inbound) and the capture
port 15001 (outbound, PROXY protocol v1 gives the original destination; see lab/contract.py):
- inbound enforces PeerAuthentication: mTLS is terminated with the workload certificate and the
  peer's SPIFFE identity is passed on in X-Forwarded-Client-Cert; a plaintext client of a STRICT port
  is reset; the request goes on to the app on the pod's private address;
- outbound routes each HTTP request by VirtualService/DestinationRule, picks an endpoint and
  originates mTLS (auto mTLS, or the DestinationRule's mode) from the pod IP; non-HTTP is relayed.
As a gateway (``proxy router``) it listens on the ports its Gateways' servers name and routes by the
VirtualServices bound to them. Both report Istio's standard metrics and serve the agent's ports:
15000 admin (pod-local), 15020 merged stats and app probes, 15021 readiness, 15090 Envoy stats.

Config and certificates come from istiod (``discovery.py``); until both arrived the proxy is not
ready, and when istiod goes away the proxy keeps serving with what it last received.
"""

from __future__ import annotations

import base64
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_meshcheck.lab.contract import SIDECAR_OUTBOUND_PORT, ExecHandler, WorkloadContext
from pytest_meshcheck.lab.mesh.ca import (
    DEFAULT_GRACE_RATIO,
    CertificateRotator,
    IssuedCertificate,
    build_csr,
    issued_from_pem,
    spiffe_id,
)
from pytest_meshcheck.lab.mesh.config import (
    DISABLE,
    ISTIO_MUTUAL,
    PERMISSIVE,
    STRICT,
    TLS_DISABLE,
    TLS_MUTUAL,
    TLS_SIMPLE,
    Endpoint,
    MeshConfig,
    MeshService,
    MeshWorkload,
    RequestInfo,
    RetryPolicy,
    RouteTarget,
    gateway_host_allowed,
)
from pytest_meshcheck.lab.mesh.discovery import (
    XDS_PLAINTEXT_PORT,
    ControlPlane,
    ControlPlaneError,
    IstiodClient,
    parse_address,
)
from pytest_meshcheck.lab.mesh.httpio import (
    Connection,
    ProtocolError,
    Request,
    Response,
    looks_like_http,
    read_request,
    read_response,
    simple_response,
)
from pytest_meshcheck.lab.mesh.injector import (
    ENVOY_PROM_PORT,
    HEALTH_PORT,
    STATUS_PORT,
    canonical_name,
    canonical_revision,
    pod_workload_name,
)
from pytest_meshcheck.lab.mesh.netio import (
    Listener,
    parse_proxy_v1,
    relay,
    reset,
    shutdown_quietly,
    shutdown_servers,
)
from pytest_meshcheck.lab.mesh.sources import FaultSource, NoFaults, faults_of
from pytest_meshcheck.lab.mesh.telemetry import (
    DestinationService,
    IstioMetrics,
    Peer,
    request_labels,
    tcp_labels,
)
from pytest_meshcheck.lab.mesh.workload_tls import WorkloadTLS, peer_identity

ADMIN_PORT = 15000
PEER_METADATA_HEADER = "x-envoy-peer-metadata"
PEER_METADATA_ID_HEADER = "x-envoy-peer-metadata-id"
#: Ports the proxy itself uses; never captured as app ports.
PROXY_PORTS = frozenset(
    {ADMIN_PORT, SIDECAR_OUTBOUND_PORT, 15004, 15006, 15008, STATUS_PORT, HEALTH_PORT, 15053, ENVOY_PROM_PORT}
)
#: How long a first read may take before a silent client is treated as opaque TCP.
SNIFF_TIMEOUT = 5.0
#: Envoy's drain on shutdown (``terminationDrainDuration``, 5s by default).
DEFAULT_DRAIN_SECONDS = 5.0
#: The fault catalogue's +400 ms on responses from reviews.
SLOW_REVIEWS_SECONDS = 0.4
CONTROL_PLANE_CONTEXT_KEY = "mesh-control-plane"
_RESET_BODY = "upstream connect error or disconnect/reset before headers. reset reason: "
CONNECT_FAILURE_BODY = _RESET_BODY + "connection failure"
TERMINATION_BODY = _RESET_BODY + "connection termination"


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


def _flags(flags: list[str]) -> str:
    return ",".join(flags) if flags else "-"


def _encode_peer(peer: Peer) -> str:
    return base64.b64encode(json.dumps(peer.to_json(), sort_keys=True).encode()).decode()


def _decode_peer(value: str) -> Peer | None:
    try:
        data = json.loads(base64.b64decode(value.encode(), validate=True))
    except (ValueError, TypeError):
        return None
    return Peer.from_json(data) if isinstance(data, dict) else None


def _peer_of(workload: MeshWorkload, principal: str, cluster: str) -> Peer:
    return Peer(
        workload=workload.workload_name,
        workload_namespace=workload.namespace,
        principal=principal,
        app=workload.app,
        version=workload.version,
        canonical_service=workload.canonical_service,
        canonical_revision=workload.canonical_revision,
        cluster=cluster,
    )


def _destination_service(service: MeshService | None) -> DestinationService:
    if service is None:
        return DestinationService()
    return DestinationService(host=service.hostname, name=service.name, namespace=service.namespace)


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
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._inflight = 0
        self._state = threading.Condition()
        self._ready_failed = False

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

    def _log(self, message: str) -> None:
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
        self._log(f"Istio proxy {self.version} starting as {'router' if self.router else 'sidecar'}")
        self._serve_http((self.ctx.pod_ip, HEALTH_PORT), self._health_routes())
        self._serve_http((self.ctx.pod_ip, STATUS_PORT), self._status_routes())
        self._serve_http((self.ctx.pod_ip, ENVOY_PROM_PORT), self._envoy_stats_routes())
        self._serve_http((self.ctx.local_ip, ADMIN_PORT), self._admin_routes())
        if not self.router:
            self._listen(SIDECAR_OUTBOUND_PORT, self._outbound_connection)
            for port in self.app_ports():
                self._listen(port, self._inbound_handler(port))
        for target, name in ((self._config_loop, "config"), (self._certificate_loop, "certs")):
            thread = threading.Thread(target=target, name=f"proxy-{name}-{self.ctx.pod_name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Envoy's shutdown: stop accepting, let in-flight requests finish (up to the drain time),
        then close. Under ``upgrade-drops`` open connections are reset instead."""
        self._draining.set()
        with self._listeners_lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.close()
        self.listeners_closed.set()
        if "upgrade-drops" in self.faults.active():
            with self._state:
                doomed = list(self._connections)
            for sock in doomed:
                reset(sock)
        else:
            with self._state:
                self._state.wait_for(lambda: self._inflight == 0, timeout=self.drain_seconds)
                idle = list(self._connections)
            for sock in idle:
                shutdown_quietly(sock)
        self._stop.set()
        shutdown_servers(self._servers)
        # the config thread may sit in a long poll to istiod; it exits when that returns
        for thread in self._threads:
            if "config" not in thread.name:
                thread.join(timeout=5.0)
        self.tls.close()

    @property
    def ready(self) -> bool:
        return (
            self.config_received.is_set()
            and self.tls.certificate is not None
            and not self._draining.is_set()
            and not self._ready_failed
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
                    self._log(f"config: {exc}")
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
            self._reconcile_gateway_listeners()
        self.config_received.set()
        with self._config_changed:
            self._config_changed.notify_all()

    def _certificate_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.rotator.refresh_if_due()
            except (ControlPlaneError, ValueError, KeyError) as exc:
                self._log(f"certificate: {exc}")
                self._stop.wait(1.0)
                continue
            self._stop.wait(max(0.05, self.rotator.seconds_until_due()))

    # --- listeners ------------------------------------------------------------------------------
    def _listen(self, port: int, handler: Callable[[socket.socket, tuple[str, int]], None]) -> None:
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
                with contextlib.suppress(OSError):
                    sock.close()

        with self._listeners_lock:
            if port in self._listeners or self._draining.is_set():
                return
            self._listeners[port] = Listener(
                (self.ctx.pod_ip, port), tracked, name=f"{self.ctx.pod_name}:{port}"
            )

    def _reconcile_gateway_listeners(self) -> None:
        wanted = {s.listen_port for s in self.config.gateway_servers(self.namespace, self.labels)}
        with self._listeners_lock:
            stale = [p for p in self._listeners if p not in wanted]
            closing = [self._listeners.pop(p) for p in stale]
        for listener in closing:
            listener.close()
        for port in sorted(wanted):
            try:
                self._listen(port, self._gateway_handler(port))
            except OSError as exc:
                self._log(f"gateway listener {port}: {exc}")

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
    def inbound_mode(self, port: int) -> str:
        mode = self.config.inbound_mtls_mode(self.namespace, self.labels, port)
        if mode == STRICT and "mtls-not-enforced" in self.faults.active():
            return PERMISSIVE
        return mode

    def _inbound_handler(self, port: int) -> Callable[[socket.socket, tuple[str, int]], None]:
        def handle(sock: socket.socket, peer: tuple[str, int]) -> None:
            self._inbound(sock, peer, port)

        return handle

    def _inbound(self, sock: socket.socket, peer: tuple[str, int], port: int) -> None:
        mode = self.inbound_mode(port)
        sock.settimeout(SNIFF_TIMEOUT)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            first = b""
        if not first and mode != STRICT:
            sock.settimeout(None)
        is_tls = first == b"\x16"
        if mode == STRICT and not is_tls:
            reset(sock)
            return
        principal, cert_hash = "", ""
        stream: socket.socket = sock
        mutual = False
        if is_tls and mode != DISABLE:
            context = self.tls.server_context
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
            with self._state:
                self._connections.add(stream)
        conn = Connection(stream)
        try:
            service_port = self._inbound_service_port(port)
            is_http = service_port.is_http if service_port is not None else False
            if service_port is None or not (service_port.is_http or service_port.is_opaque_tcp):
                try:
                    is_http = looks_like_http(conn.peek(4))
                except TimeoutError:
                    is_http = False
            stream.settimeout(None)
            if is_http:
                self._inbound_http(conn, port, peer, mutual=mutual, principal=principal, cert_hash=cert_hash)
            else:
                self._inbound_tcp(conn, port, peer, mutual, principal)
        finally:
            with self._state:
                self._connections.discard(stream)
            conn.close()

    def _inbound_service_port(self, port: int) -> Any:
        found = self.config.service_port_for_target(self._self_workload(), port)
        return found[1] if found else None

    def _inbound_source(self, request: Request | None, mutual: bool, principal: str, peer_ip: str) -> Peer:
        header = request.header(PEER_METADATA_HEADER) if request is not None else None
        if header:
            decoded = _decode_peer(header)
            if decoded is not None:
                return Peer(
                    **{**decoded.to_json(), "principal": principal if mutual and principal else "unknown"}
                )
        if mutual:
            workload = self.config.workload_by_ip(peer_ip)
            if workload is not None:
                return _peer_of(workload, principal or "unknown", self.cluster_id)
            return Peer(principal=principal or "unknown")
        return Peer()

    def _inbound_service(self, request: Request | None, port: int) -> DestinationService:
        if request is not None and request.header("host"):
            service = self.config.resolve_host(request.header("host") or "", self.namespace)
            if service is not None:
                return _destination_service(service)
        found = self.config.service_port_for_target(self._self_workload(), port)
        return _destination_service(found[0] if found else None)

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
            while not self._stop.is_set():
                request = read_request(conn)
                if request is None:
                    return
                self._begin()
                try:
                    started = time.monotonic()
                    source = self._inbound_source(request, mutual, principal, peer[0])
                    service = self._inbound_service(request, port)
                    request.remove_header(PEER_METADATA_HEADER)
                    request.remove_header(PEER_METADATA_ID_HEADER)
                    if mutual:
                        xfcc = f'By={self.tls.spiffe_id};Hash={cert_hash};Subject="";URI={principal}'
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
                    if "ratings-5xx" in self.faults.active() and self._is("ratings"):
                        response = simple_response(503, "fault filter abort")
                        flags.append("FI")
                    else:
                        response, upstream = self._to_app(request, port, upstream, flags)
                    if "slow-reviews" in self.faults.active() and self._is("reviews"):
                        # the injected regression itself: reviews answers 400 ms later
                        time.sleep(SLOW_REVIEWS_SECONDS)
                    response.set_header("server", "istio-envoy")
                    destination = self.self_peer(self.tls.spiffe_id if mutual else "unknown")
                    if not self._missing_edge(source, destination):
                        labels = request_labels(
                            reporter="destination",
                            source=source,
                            destination=destination,
                            service=service,
                            protocol="http",
                            response_code=response.status,
                            response_flags=_flags(flags),
                            mutual_tls=mutual,
                        )
                        self.metrics.record_request(
                            labels,
                            duration_ms=(time.monotonic() - started) * 1000.0,
                            request_bytes=request.wire_size(),
                            response_bytes=response.wire_size(),
                        )
                    keep = request.keep_alive and not self._draining.is_set()
                    if not keep:
                        response.set_header("connection", "close")
                    conn.send(response.encode(head_only=request.method == "HEAD"))
                finally:
                    self._end()
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
                    upstream = Connection(socket.create_connection((self.ctx.local_ip, port), timeout=10))
                except OSError:
                    flags.append("UF")
                    body = CONNECT_FAILURE_BODY
                    return simple_response(503, body), None
                upstream.sock.settimeout(None)
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
        destination = self.self_peer(self.tls.spiffe_id if mutual else "unknown")
        record = not self._missing_edge(source, destination)
        labels = tcp_labels(
            reporter="destination",
            source=source,
            destination=destination,
            service=self._inbound_service(None, port),
            response_flags="-",
            mutual_tls=mutual,
        )
        try:
            app = socket.create_connection((self.ctx.local_ip, port), timeout=10)
        except OSError:
            return
        app.settimeout(None)
        if record:
            self.metrics.tcp_opened(labels)
        received, sent = relay(conn.sock, app, conn.buffer)
        app.close()
        if record:
            self.metrics.tcp_closed(labels, sent=sent, received=received)

    # --- outbound -------------------------------------------------------------------------------
    def _outbound_connection(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        sock.settimeout(SNIFF_TIMEOUT)
        conn = Connection(sock)
        line = conn.read_line()
        if line is None:
            return
        try:
            _src, _sport, dst, dport = parse_proxy_v1(line)
        except ValueError:
            reset(sock)
            return
        config = self.config
        service = config.service_by_ip(dst)
        workload = None if service is not None else config.workload_by_ip(dst)
        if (service is None and workload is None) or (service is not None and not service.selector):
            # unknown to the mesh, or a Service without a selector (``kubernetes``, hand-made
            # Endpoints): straight through to where the app was going
            sock.settimeout(None)
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
        sock.settimeout(None)
        if service is None and workload is not None:
            target = RouteTarget(service=None, port=dport, workload=workload)
        else:
            target = RouteTarget(service=service, port=dport)
        if is_http:
            self._downstream_http(
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

    def _downstream_http(
        self,
        conn: Connection,
        peer: tuple[str, int],
        route: Callable[[RequestInfo], RouteTarget | None],
        *,
        port: int | None = None,
    ) -> None:
        pool: dict[tuple[str, int, str], tuple[Connection, str]] = {}
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
                    exchange = self._forward(request, target, pool)
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
            destination = _peer_of(endpoint.workload, exchange.destination_principal, self.cluster_id)
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
            service=_destination_service(service),
            protocol="http",
            response_code=exchange.response.status,
            response_flags=_flags(exchange.flags),
            mutual_tls=exchange.mutual_tls,
        )
        self.metrics.record_request(
            labels,
            duration_ms=(time.monotonic() - started) * 1000.0,
            request_bytes=request_bytes,
            response_bytes=exchange.response.wire_size(),
        )

    def _tls_mode(self, target: RouteTarget, endpoint: Endpoint) -> str:
        mode = self.config.upstream_tls_mode(target, endpoint, self.namespace)
        destination_app = endpoint.workload.app
        if (
            "plaintext-hop" in self.faults.active()
            and self._is("reviews", "v2")
            and destination_app == "ratings"
        ):
            return TLS_DISABLE
        return mode

    def _connect_upstream(
        self, endpoint: Endpoint, mode: str, timeout: float | None
    ) -> tuple[Connection, str]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.ctx.pod_ip, 0))
            sock.settimeout(timeout if timeout is not None else 10.0)
            sock.connect(endpoint.address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise UpstreamConnectError(str(exc)) from exc
        principal = "unknown"
        if mode in (ISTIO_MUTUAL, TLS_MUTUAL, TLS_SIMPLE):
            context = self.tls.client_context
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
        sock.settimeout(timeout)
        return Connection(sock), principal

    def _send(
        self,
        pool: dict[tuple[str, int, str], tuple[Connection, str]],
        endpoint: Endpoint,
        mode: str,
        request: Request,
        timeout: float | None,
    ) -> tuple[Response, str]:
        key = (endpoint.workload.ip, endpoint.port, mode)
        for attempt in range(2):
            pooled = pool.pop(key, None)
            if pooled is None:
                upstream, principal = self._connect_upstream(endpoint, mode, timeout)
            else:
                upstream, principal = pooled
                upstream.sock.settimeout(timeout)
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

    def _forward(
        self,
        request: Request,
        target: RouteTarget | None,
        pool: dict[tuple[str, int, str], tuple[Connection, str]],
    ) -> Exchange:
        if target is None:
            return Exchange(simple_response(404, ""), ["NR"])
        route = target.route
        flags: list[str] = []
        if route is not None and route.delay_seconds and self.rng.random() * 100 < route.delay_percent:
            self._stop.wait(route.delay_seconds)  # the VirtualService's injected delay
            flags.append("DI")
        if route is not None and route.abort_status and self.rng.random() * 100 < route.abort_percent:
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
        request.set_header(PEER_METADATA_HEADER, _encode_peer(self.self_peer()))
        request.set_header(
            PEER_METADATA_ID_HEADER,
            self.node_id,
        )
        retries = route.retries if route is not None else RetryPolicy()
        deadline = time.monotonic() + route.timeout if route is not None and route.timeout else None
        attempts = 0
        exchange = Exchange(simple_response(503, "no healthy upstream"), [*flags, "UH"], target)
        while True:
            endpoint = self.config.pick_endpoint(target, self.namespace)
            if endpoint is None:
                return Exchange(simple_response(503, "no healthy upstream"), [*flags, "UH"], target)
            mode = self._tls_mode(target, endpoint)
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

    def _outbound_tcp(self, conn: Connection, target: RouteTarget) -> None:
        endpoint = self.config.pick_endpoint(target, self.namespace)
        if endpoint is None:
            reset(conn.sock)
            return
        mode = self._tls_mode(target, endpoint)
        try:
            upstream, principal = self._connect_upstream(endpoint, mode, 10.0)
        except UpstreamConnectError:
            reset(conn.sock)
            return
        upstream.sock.settimeout(None)
        mutual = mode in (ISTIO_MUTUAL, TLS_MUTUAL)
        source = self.self_peer()
        destination = _peer_of(endpoint.workload, principal if mutual else "unknown", self.cluster_id)
        record = not self._missing_edge(source, destination)
        service = target.service
        if service is None:
            found = self.config.service_port_for_target(endpoint.workload, endpoint.port)
            service = found[0] if found else None
        labels = tcp_labels(
            reporter="source",
            source=source,
            destination=destination,
            service=_destination_service(service),
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
            upstream.settimeout(None)
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

    # --- gateway --------------------------------------------------------------------------------
    def _gateway_handler(self, listen_port: int) -> Callable[[socket.socket, tuple[str, int]], None]:
        def handle(sock: socket.socket, peer: tuple[str, int]) -> None:
            self._downstream_http(
                Connection(sock), peer, lambda info: self.route_gateway(info, listen_port), port=listen_port
            )

        return handle

    def route_gateway(self, info: RequestInfo, listen_port: int) -> RouteTarget | None:
        if "gateway-404" in self.faults.active():
            return None
        for server in self.config.gateway_servers(self.namespace, self.labels):
            if server.listen_port != listen_port or not gateway_host_allowed(server.hosts, info.authority):
                continue
            target = self.config.route_http(
                info,
                service=None,
                source_namespace=self.namespace,
                source_labels=self.labels,
                gateway=server.gateway,
                rng=self.rng,
            )
            if target is not None:
                return target
        return None

    # --- agent HTTP ports -----------------------------------------------------------------------
    def _serve_http(
        self, address: tuple[str, int], routes: Mapping[str, Callable[[str, str], tuple[int, str, str]]]
    ) -> None:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                handler = routes.get(path)
                if handler is None:
                    prefixed = [p for p in routes if p.endswith("/") and path.startswith(p)]
                    handler = routes[prefixed[0]] if prefixed else None
                if handler is None:
                    status, body, ctype = 404, "not found\n", "text/plain"
                else:
                    status, body, ctype = handler(method, self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_HEAD(self) -> None:
                self._dispatch("HEAD")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0") or 0)
                if length:
                    self.rfile.read(length)
                self._dispatch("POST")

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        server = ThreadingHTTPServer(address, Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name=f"agent-http-{address[1]}", daemon=True)
        thread.start()
        self._servers.append(server)
        del agent

    def _ready_route(self, method: str, path: str) -> tuple[int, str, str]:
        del method, path
        if self.ready:
            return 200, "", "text/plain"
        return 503, "not ready\n", "text/plain"

    def _health_routes(self) -> dict[str, Callable[[str, str], tuple[int, str, str]]]:
        return {"/healthz/ready": self._ready_route}

    def envoy_stats(self) -> str:
        lines = [
            "# TYPE envoy_server_live gauge",
            f"envoy_server_live {1 if not self._draining.is_set() else 0}",
            "# TYPE envoy_server_state gauge",
            f"envoy_server_state {0 if self.ready else 1}",
        ]
        return "\n".join(lines) + "\n" + self.metrics.render()

    def merged_stats(self) -> str:
        """What 15020 serves: the agent's own metrics followed by Envoy's (Istio's metrics merging)."""
        agent = [
            "# TYPE istio_build gauge",
            f'istio_build{{component="proxy",tag="{self.version}"}} 1',
        ]
        return "\n".join(agent) + "\n" + self.envoy_stats()

    def _status_routes(self) -> dict[str, Callable[[str, str], tuple[int, str, str]]]:
        return {
            "/stats/prometheus": lambda m, p: (200, self.merged_stats(), "text/plain; version=0.0.4"),
            "/healthz/ready": self._ready_route,
            "/app-health/": self._app_health,
        }

    def _envoy_stats_routes(self) -> dict[str, Callable[[str, str], tuple[int, str, str]]]:
        return {"/stats/prometheus": lambda m, p: (200, self.envoy_stats(), "text/plain; version=0.0.4")}

    def _app_health(self, method: str, path: str) -> tuple[int, str, str]:
        """pilot-agent's probe rewriting: run the app's original probe against its local port."""
        del method
        probers_text = self.ctx.env.get("ISTIO_KUBE_APP_PROBERS", "") or "{}"
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
                socket.create_connection((self.ctx.local_ip, port), timeout=timeout).close()
            except OSError:
                return 503, "", "text/plain"
            return 200, "", "text/plain"
        get = probe.get("httpGet", {})
        port = self._probe_port(get.get("port"))
        try:
            conn = Connection(socket.create_connection((self.ctx.local_ip, port), timeout=timeout))
            conn.send(
                f"GET {get.get('path', '/')} HTTP/1.1\r\nHost: {self.ctx.local_ip}:{port}\r\n"
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
        return self._self_workload().named_ports.get(str(port), 0)

    @property
    def node_id(self) -> str:
        """Envoy's node id as pilot-agent builds it: ``<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local``."""
        kind = "router" if self.router else "sidecar"
        ns = self.namespace
        return f"{kind}~{self.ctx.pod_ip}~{self.ctx.pod_name}.{ns}~{ns}.svc.cluster.local"

    def server_info(self) -> dict[str, Any]:
        return {
            "version": f"istio-lab-envoy/{self.version}/Clean/RELEASE/BoringSSL",
            "state": "LIVE" if not self._draining.is_set() else "DRAINING",
            "command_line_options": {
                "service_node": f"{'router' if self.router else 'sidecar'}~{self.ctx.pod_ip}"
            },
            "node": {
                "id": self.node_id,
                "metadata": {"ISTIO_VERSION": self.version, "CLUSTER_ID": self.cluster_id},
            },
            "istio": {"configVersion": self.config.version, "certificate": self.tls.spiffe_id},
        }

    def _admin_routes(self) -> dict[str, Callable[[str, str], tuple[int, str, str]]]:
        return {
            "/server_info": lambda m, p: (200, json.dumps(self.server_info(), indent=2), "application/json"),
            "/stats/prometheus": lambda m, p: (200, self.envoy_stats(), "text/plain; version=0.0.4"),
            "/ready": lambda m, p: (
                (200, "LIVE\n", "text/plain") if self.ready else (503, "PRE_INITIALIZING\n", "text/plain")
            ),
            "/config_dump": lambda m, p: (
                200,
                json.dumps({"configs": [], "version": self.config.version}),
                "application/json",
            ),
            "/listeners": lambda m, p: (
                200,
                "\n".join(f"0.0.0.0_{port}" for port in self.listening_ports()) + "\n",
                "text/plain",
            ),
            "/healthcheck/fail": self._fail_health,
            "/quitquitquit": self._quit,
        }

    def _fail_health(self, method: str, path: str) -> tuple[int, str, str]:
        if method != "POST":
            return 405, "use POST\n", "text/plain"
        self._ready_failed = True
        return 200, "OK\n", "text/plain"

    def _quit(self, method: str, path: str) -> tuple[int, str, str]:
        if method != "POST":
            return 405, "use POST\n", "text/plain"
        threading.Thread(target=self.stop, daemon=True).start()
        return 200, "OK\n", "text/plain"

    def admin_request(self, method: str, path: str) -> tuple[int, str]:
        path = "/" + path.lstrip("/")
        routes = self._admin_routes()
        handler = routes.get(path.split("?", 1)[0])
        if handler is None:
            return 404, "invalid path\n"
        status, body, _ = handler(method, path)
        return status, body

    # --- exec -----------------------------------------------------------------------------------
    def exec_commands(self) -> Mapping[str, ExecHandler]:
        return {"pilot-agent": self._pilot_agent}

    def _pilot_agent(self, argv: list[str], stdin: Any, stdout: Any, stderr: Any) -> int:
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
                stdout.write(f"{self.version}\n".encode())
            else:
                stdout.write(
                    f'version.BuildInfo{{Version:"{self.version}", GitRevision:"lab", GolangVersion:"", '
                    f'BuildStatus:"Clean", GitTag:"{self.version}"}}\n'.encode()
                )
            return 0
        stderr.write(b"Usage: pilot-agent request <METHOD> <PATH> | pilot-agent version [--short]\n")
        return 64


def _authority_port(request: Request) -> int:
    host, _, port = (request.header("host") or "").rpartition(":")
    return int(port) if host and port.isdigit() else 80


def proxy_workload(ctx: WorkloadContext) -> ProxyAgent:
    """The ``WorkloadFactory`` for proxyv2 images."""
    return ProxyAgent(ctx)
