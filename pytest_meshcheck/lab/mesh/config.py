"""The mesh's effective configuration, computed from Istio's CRs the way istiod computes it.

istiod turns VirtualServices, DestinationRules, Gateways, PeerAuthentications, Services and pods into
Envoy configuration; the lab's proxies ask this module the same questions Envoy answers from that
configuration: which mTLS mode guards an inbound port, which route an outbound request takes, which
subset and endpoints it lands on, and whether the hop originates mutual TLS. The input is a plain
mapping of kind name to the objects' JSON (``MeshConfig.from_objects``), the same document istiod
ships to proxies, so the questions are answered identically in istiod's debug output and in proxies.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_meshcheck.lab.mesh.injector import (
    TLS_MODE_LABEL,
    canonical_name,
    canonical_revision,
    pod_workload_name,
)

DOMAIN_SUFFIX = "svc.cluster.local"
ROOT_NAMESPACE = "istio-system"

#: Kind name in a config document -> the resource addresses to read it from, preferred first.
CONFIG_KINDS: Mapping[str, tuple[str, ...]] = {
    "pods": ("v1/pods",),
    "services": ("v1/services",),
    "virtualservices": (
        "networking.istio.io/v1/virtualservices",
        "networking.istio.io/v1beta1/virtualservices",
        "networking.istio.io/v1alpha3/virtualservices",
    ),
    "destinationrules": (
        "networking.istio.io/v1/destinationrules",
        "networking.istio.io/v1beta1/destinationrules",
        "networking.istio.io/v1alpha3/destinationrules",
    ),
    "gateways": (
        "networking.istio.io/v1/gateways",
        "networking.istio.io/v1beta1/gateways",
        "networking.istio.io/v1alpha3/gateways",
    ),
    "peerauthentications": (
        "security.istio.io/v1/peerauthentications",
        "security.istio.io/v1beta1/peerauthentications",
    ),
}

#: The config document's key for gateway credentials (not a watched kind: istiod adds it for routers).
GATEWAY_SECRETS_KIND = "secrets"

STRICT = "STRICT"
PERMISSIVE = "PERMISSIVE"
DISABLE = "DISABLE"
UNSET = "UNSET"

ISTIO_MUTUAL = "ISTIO_MUTUAL"
TLS_DISABLE = "DISABLE"
TLS_SIMPLE = "SIMPLE"
TLS_MUTUAL = "MUTUAL"

#: Istio's default route retry policy when a VirtualService sets none.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRY_ATTEMPTS = 2

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_DURATION_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Protobuf-JSON durations as Istio writes them (``0.5s``, ``500ms``, ``1m``); seconds."""
    if text is None or text == "":
        return None
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _DURATION_SCALE[match.group(2)]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata", {}) or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec", {}) or {}


def _age_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Istio resolves conflicts by the oldest object, then by name."""
    meta = _meta(obj)
    return str(meta.get("creationTimestamp", "")), str(meta.get("name", ""))


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# --- services and workloads -----------------------------------------------------------------------
@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"
    app_protocol: str = ""

    @property
    def is_http(self) -> bool:
        """Istio's explicit protocol selection: ``appProtocol`` or the port name's prefix."""
        declared = (self.app_protocol or self.name.split("-", 1)[0]).lower()
        return declared in ("http", "http2", "grpc", "grpc-web", "h2c")

    @property
    def is_opaque_tcp(self) -> bool:
        declared = (self.app_protocol or self.name.split("-", 1)[0]).lower()
        return declared in ("tcp", "tls", "mongo", "mysql", "redis", "https")


@dataclass(frozen=True)
class MeshService:
    name: str
    namespace: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str]

    @property
    def hostname(self) -> str:
        return f"{self.name}.{self.namespace}.{DOMAIN_SUFFIX}"

    def port(self, number: int) -> ServicePort | None:
        for port in self.ports:
            if port.port == number:
                return port
        return None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> MeshService:
        spec = _spec(obj)
        ports = tuple(
            ServicePort(
                name=str(p.get("name", "")),
                port=int(p["port"]),
                target_port=p.get("targetPort", p["port"]),
                protocol=str(p.get("protocol", "TCP")),
                app_protocol=str(p.get("appProtocol", "")),
            )
            for p in spec.get("ports", []) or []
        )
        ip = spec.get("clusterIP") or ""
        return cls(
            name=str(_meta(obj).get("name", "")),
            namespace=str(_meta(obj).get("namespace", "")),
            cluster_ip="" if ip == "None" else str(ip),
            ports=ports,
            selector=dict(spec.get("selector", {}) or {}),
        )


@dataclass(frozen=True)
class MeshWorkload:
    """One pod as telemetry and routing see it."""

    pod_name: str
    namespace: str
    ip: str
    labels: Mapping[str, str]
    service_account: str
    workload_name: str
    #: containerPort by port name, and all container port numbers (app containers only).
    named_ports: Mapping[str, int]
    ports: tuple[int, ...]
    ready: bool

    @property
    def has_sidecar(self) -> bool:
        return self.labels.get(TLS_MODE_LABEL) == "istio"

    @property
    def app(self) -> str:
        return self.labels.get("app", "unknown") or "unknown"

    @property
    def version(self) -> str:
        return self.labels.get("version", "unknown") or "unknown"

    @property
    def canonical_service(self) -> str:
        return canonical_name(self.labels, self.workload_name)

    @property
    def canonical_revision(self) -> str:
        return canonical_revision(self.labels)

    def principal(self, trust_domain: str = "cluster.local") -> str:
        return f"spiffe://{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def resolve_target_port(self, target: int | str) -> int | None:
        if isinstance(target, int):
            return target
        if str(target).isdigit():
            return int(target)
        return self.named_ports.get(str(target))

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> MeshWorkload:
        meta, spec = _meta(pod), _spec(pod)
        status = pod.get("status", {}) or {}
        named: dict[str, int] = {}
        numbers: list[int] = []
        for container in spec.get("containers", []) or []:
            if container.get("name") == "istio-proxy":
                continue
            for port in container.get("ports", []) or []:
                number = int(port.get("containerPort", 0))
                numbers.append(number)
                if port.get("name"):
                    named[str(port["name"])] = number
        ready = status.get("phase") == "Running" and all(
            c.get("status") == "True" for c in status.get("conditions", []) or [] if c.get("type") == "Ready"
        )
        return cls(
            pod_name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            ip=str(status.get("podIP", "") or ""),
            labels=dict(meta.get("labels", {}) or {}),
            service_account=str(spec.get("serviceAccountName") or "default"),
            workload_name=pod_workload_name(pod),
            named_ports=named,
            ports=tuple(numbers),
            ready=ready,
        )


@dataclass(frozen=True)
class Endpoint:
    workload: MeshWorkload
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return self.workload.ip, self.port


# --- routes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestInfo:
    """What routing looks at in one HTTP request."""

    authority: str
    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    port: int = 80


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = DEFAULT_RETRY_ATTEMPTS
    per_try_timeout: float | None = None
    retry_on: frozenset[str] = frozenset(DEFAULT_RETRY_ON.split(","))

    def retries_status(self, status: int) -> bool:
        if "5xx" in self.retry_on and status >= 500:
            return True
        if "gateway-error" in self.retry_on and status in (502, 503, 504):
            return True
        if "retriable-4xx" in self.retry_on and status == 409:
            return True
        if "retriable-status-codes" in self.retry_on and status == 503:
            return True
        return str(status) in self.retry_on

    def retries_connect_failure(self) -> bool:
        return bool({"connect-failure", "5xx", "gateway-error", "reset", "refused-stream"} & self.retry_on)


@dataclass(frozen=True)
class RouteDestination:
    host: str
    subset: str
    port: int | None
    weight: int


@dataclass(frozen=True)
class HttpRoute:
    """One ``http`` entry of a VirtualService, parsed."""

    name: str
    virtual_service: str
    namespace: str
    destinations: tuple[RouteDestination, ...]
    timeout: float | None
    retries: RetryPolicy
    abort_status: int | None = None
    abort_percent: float = 0.0
    delay_seconds: float | None = None
    delay_percent: float = 0.0
    rewrite_uri: str | None = None
    matched_prefix: str | None = None
    direct_status: int | None = None
    request_headers_set: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteTarget:
    """Where one request goes after routing: a service (port, subset) or a bare pod."""

    service: MeshService | None
    port: int
    subset: str = ""
    route: HttpRoute | None = None
    workload: MeshWorkload | None = None


def _string_match(spec: Mapping[str, Any] | None, value: str | None, *, ignore_case: bool = False) -> bool:
    if spec is None:
        return True
    if value is None:
        return False
    if ignore_case:
        value = value.lower()
    if "exact" in spec:
        expected = str(spec["exact"])
        return value == (expected.lower() if ignore_case else expected)
    if "prefix" in spec:
        expected = str(spec["prefix"])
        return value.startswith(expected.lower() if ignore_case else expected)
    if "regex" in spec:
        return re.fullmatch(str(spec["regex"]), value) is not None
    return True  # ``{}``: present


def _match_one(
    match: Mapping[str, Any], request: RequestInfo, source_labels: Mapping[str, str], source_ns: str
) -> bool:
    path = request.path.split("?", 1)[0]
    if not _string_match(match.get("uri"), path, ignore_case=bool(match.get("ignoreUriCase"))):
        return False
    if not _string_match(match.get("method"), request.method):
        return False
    if not _string_match(match.get("authority"), request.authority):
        return False
    if match.get("port") and int(match["port"]) != request.port:
        return False
    lowered = {k.lower(): v for k, v in request.headers.items()}
    for name, spec in (match.get("headers", {}) or {}).items():
        if not _string_match(spec or {}, lowered.get(name.lower())):
            return False
    for name, spec in (match.get("withoutHeaders", {}) or {}).items():
        if _string_match(spec or {}, lowered.get(name.lower())):
            return False
    if match.get("queryParams"):
        query = request.path.split("?", 1)[1] if "?" in request.path else ""
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        for name, spec in match["queryParams"].items():
            if not _string_match(spec or {}, params.get(name)):
                return False
    if not labels_match(match.get("sourceLabels"), source_labels):
        return False
    return not (match.get("sourceNamespace") and match["sourceNamespace"] != source_ns)


def _percent(fault: Mapping[str, Any]) -> float:
    if "percentage" in fault:
        return float((fault.get("percentage") or {}).get("value", 0.0))
    if "percent" in fault:
        return float(fault["percent"])
    return 100.0


def _parse_http_route(vs: Mapping[str, Any], entry: Mapping[str, Any], index: int) -> HttpRoute:
    meta = _meta(vs)
    destinations = []
    for dest in entry.get("route", []) or []:
        d = dest.get("destination", {}) or {}
        port = (d.get("port") or {}).get("number")
        destinations.append(
            RouteDestination(
                host=str(d.get("host", "")),
                subset=str(d.get("subset", "") or ""),
                port=int(port) if port else None,
                weight=int(dest.get("weight", 0) or 0),
            )
        )
    retries_spec = entry.get("retries")
    if retries_spec is None:
        retries = RetryPolicy()
    else:
        retry_on = str(retries_spec.get("retryOn") or DEFAULT_RETRY_ON)
        retries = RetryPolicy(
            attempts=int(retries_spec.get("attempts", 0) or 0),
            per_try_timeout=parse_duration(retries_spec.get("perTryTimeout")),
            retry_on=frozenset(token.strip() for token in retry_on.split(",")),
        )
    fault = entry.get("fault", {}) or {}
    abort, delay = fault.get("abort"), fault.get("delay")
    rewrite = (entry.get("rewrite") or {}).get("uri")
    direct = (entry.get("directResponse") or {}).get("status")
    headers_set = (((entry.get("headers") or {}).get("request") or {}).get("set")) or {}
    return HttpRoute(
        name=str(entry.get("name", "") or f"{meta.get('name', '')}.{index}"),
        virtual_service=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        destinations=tuple(destinations),
        timeout=parse_duration(entry.get("timeout")),
        retries=retries,
        abort_status=int(abort["httpStatus"]) if abort and "httpStatus" in abort else None,
        abort_percent=_percent(abort) if abort else 0.0,
        delay_seconds=parse_duration(delay.get("fixedDelay")) if delay else None,
        delay_percent=_percent(delay) if delay else 0.0,
        rewrite_uri=str(rewrite) if rewrite is not None else None,
        direct_status=int(direct) if direct else None,
        request_headers_set={str(k): str(v) for k, v in headers_set.items()},
    )


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*``, or a ``*.suffix`` wildcard."""
    host = host.lower()
    pattern = pattern.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def _qualify(host: str, namespace: str) -> str:
    """Short names in Istio resources are relative to the resource's namespace."""
    if "*" in host or "." in host:
        return host
    return f"{host}.{namespace}.{DOMAIN_SUFFIX}"


def strip_port(authority: str) -> str:
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


@dataclass(frozen=True)
class GatewayServer:
    gateway: str  # "<namespace>/<name>"
    listen_port: int
    number: int
    protocol: str
    hosts: tuple[str, ...]
    #: ``tls.mode`` of an HTTPS server (SIMPLE, MUTUAL ...), "" for plain HTTP.
    tls_mode: str = ""
    credential_name: str = ""


class MeshConfig:
    """Answers routing and security questions over one consistent set of objects."""

    def __init__(
        self,
        objects: Mapping[str, Iterable[Mapping[str, Any]]],
        *,
        root_namespace: str = ROOT_NAMESPACE,
        trust_domain: str = "cluster.local",
        version: int = 0,
    ) -> None:
        self.version = version
        self.root_namespace = root_namespace
        self.trust_domain = trust_domain
        self.objects = {kind: list(objects.get(kind, [])) for kind in CONFIG_KINDS}
        #: Gateway credentials (``credentialName`` secrets); present only in a router's config.
        self.secrets = list(objects.get(GATEWAY_SECRETS_KIND, []))
        self.services = [MeshService.from_object(s) for s in self.objects["services"]]
        self.workloads = [
            MeshWorkload.from_pod(p)
            for p in self.objects["pods"]
            if (p.get("status") or {}).get("podIP") and not _meta(p).get("deletionTimestamp")
        ]
        self._by_ip = {w.ip: w for w in self.workloads}
        self._service_by_ip = {s.cluster_ip: s for s in self.services if s.cluster_ip}
        self._service_by_host = {s.hostname: s for s in self.services}
        self.virtual_services = sorted(self.objects["virtualservices"], key=_age_key)
        self.destination_rules = sorted(self.objects["destinationrules"], key=_age_key)
        self.gateways = sorted(self.objects["gateways"], key=_age_key)
        self.peer_authentications = sorted(self.objects["peerauthentications"], key=_age_key)
        self._round_robin: dict[tuple[str, int, str], int] = {}

    @classmethod
    def empty(cls) -> MeshConfig:
        return cls({})

    # --- lookups -----------------------------------------------------------------------------
    def workload_by_ip(self, ip: str) -> MeshWorkload | None:
        return self._by_ip.get(ip)

    def workload(self, namespace: str, pod_name: str) -> MeshWorkload | None:
        for w in self.workloads:
            if w.namespace == namespace and w.pod_name == pod_name:
                return w
        return None

    def service_by_ip(self, ip: str) -> MeshService | None:
        return self._service_by_ip.get(ip)

    def resolve_host(self, host: str, namespace: str) -> MeshService | None:
        """``svc``, ``svc.ns``, ``svc.ns.svc``, the FQDN, or a ClusterIP, relative to ``namespace``."""
        host = strip_port(host).lower().rstrip(".")
        if host in self._service_by_ip:
            return self._service_by_ip[host]
        parts = host.split(".")
        if len(parts) == 1:
            fqdn = f"{host}.{namespace}.{DOMAIN_SUFFIX}"
        elif len(parts) == 2:
            fqdn = f"{host}.{DOMAIN_SUFFIX}"
        elif len(parts) == 3 and parts[2] == "svc":
            fqdn = f"{host}.cluster.local"
        else:
            fqdn = host
        return self._service_by_host.get(fqdn)

    def services_of(self, workload: MeshWorkload) -> list[MeshService]:
        return [
            s
            for s in self.services
            if s.namespace == workload.namespace and s.selector and labels_match(s.selector, workload.labels)
        ]

    def service_port_for_target(
        self, workload: MeshWorkload, port: int
    ) -> tuple[MeshService, ServicePort] | None:
        """The service (and port) through which ``workload:port`` is reached, for telemetry."""
        for service in self.services_of(workload):
            for sp in service.ports:
                if workload.resolve_target_port(sp.target_port) == port:
                    return service, sp
        return None

    # --- PeerAuthentication ------------------------------------------------------------------
    def _pa_candidates(self, namespace: str, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        workload_level = [
            pa
            for pa in self.peer_authentications
            if _meta(pa).get("namespace") == namespace
            and (_spec(pa).get("selector") or {}).get("matchLabels")
            and labels_match((_spec(pa).get("selector") or {}).get("matchLabels"), labels)
        ]
        namespace_level = [
            pa
            for pa in self.peer_authentications
            if _meta(pa).get("namespace") == namespace
            and not (_spec(pa).get("selector") or {}).get("matchLabels")
        ]
        mesh_level = [
            pa
            for pa in self.peer_authentications
            if _meta(pa).get("namespace") == self.root_namespace
            and not (_spec(pa).get("selector") or {}).get("matchLabels")
        ]
        chain: list[Mapping[str, Any]] = []
        for level in (workload_level, namespace_level, mesh_level):
            if level:
                chain.append(level[0])
        return chain

    def inbound_mtls_mode(self, namespace: str, labels: Mapping[str, str], port: int) -> str:
        """STRICT, PERMISSIVE or DISABLE for one inbound (container) port: the port-level setting of
        the workload policy, then its mode, then the namespace's, then the mesh's, then PERMISSIVE;
        UNSET inherits at every step (Istio's documented precedence)."""
        chain = self._pa_candidates(namespace, labels)
        for index, pa in enumerate(chain):
            spec = _spec(pa)
            has_selector = bool((spec.get("selector") or {}).get("matchLabels"))
            if index == 0 and has_selector:
                port_level = (spec.get("portLevelMtls") or {}).get(str(port))
                if port_level is None:
                    port_level = (spec.get("portLevelMtls") or {}).get(port)
                if port_level:
                    mode = str(port_level.get("mode", UNSET) or UNSET).upper()
                    if mode != UNSET:
                        return mode
            mode = str((spec.get("mtls") or {}).get("mode", UNSET) or UNSET).upper()
            if mode != UNSET:
                return mode
        return PERMISSIVE

    # --- DestinationRule -----------------------------------------------------------------------
    def destination_rule(self, host: str, client_namespace: str) -> Mapping[str, Any] | None:
        """The rule for a host: client namespace first, then the service's, then the root namespace;
        an exact host beats a wildcard within one namespace."""
        service_ns = host.split(".")[1] if host.endswith(DOMAIN_SUFFIX) and host.count(".") >= 2 else ""
        for ns in dict.fromkeys([client_namespace, service_ns, self.root_namespace]):
            if not ns:
                continue
            candidates = [dr for dr in self.destination_rules if _meta(dr).get("namespace") == ns]
            exact = [dr for dr in candidates if _qualify(str(_spec(dr).get("host", "")), ns) == host]
            if exact:
                return exact[0]
            wild = [
                dr
                for dr in candidates
                if "*" in str(_spec(dr).get("host", ""))
                and host_matches(str(_spec(dr).get("host", "")), host)
            ]
            if wild:
                return sorted(wild, key=lambda d: -len(str(_spec(d).get("host", ""))))[0]
        return None

    def subset_labels(
        self, service: MeshService, subset: str, client_namespace: str
    ) -> Mapping[str, str] | None:
        """The labels of a named subset, or None when the subset is not defined (Envoy: no cluster,
        503 NR)."""
        if not subset:
            return {}
        dr = self.destination_rule(service.hostname, client_namespace)
        if dr is None:
            return None
        for entry in _spec(dr).get("subsets", []) or []:
            if entry.get("name") == subset:
                return dict(entry.get("labels", {}) or {})
        return None

    def _tls_settings(
        self, service: MeshService, port: int, subset: str, client_ns: str
    ) -> Mapping[str, Any] | None:
        dr = self.destination_rule(service.hostname, client_ns)
        if dr is None:
            return None
        spec = _spec(dr)
        policies: list[Mapping[str, Any]] = [spec.get("trafficPolicy") or {}]
        for entry in spec.get("subsets", []) or []:
            if subset and entry.get("name") == subset and entry.get("trafficPolicy"):
                policies.append(entry["trafficPolicy"])
        chosen: Mapping[str, Any] | None = None
        for policy in policies:
            if policy.get("tls"):
                chosen = policy["tls"]
            for port_setting in policy.get("portLevelSettings", []) or []:
                if int((port_setting.get("port") or {}).get("number", -1)) == port and port_setting.get(
                    "tls"
                ):
                    chosen = port_setting["tls"]
        return chosen

    def upstream_tls_mode(self, target: RouteTarget, endpoint: Endpoint, client_namespace: str) -> str:
        """ISTIO_MUTUAL, DISABLE, SIMPLE or MUTUAL for one hop: the DestinationRule's TLS mode when it
        sets one, otherwise auto mTLS (mutual TLS when the endpoint has a sidecar and its
        PeerAuthentication does not DISABLE the port)."""
        if target.service is not None:
            settings = self._tls_settings(target.service, target.port, target.subset, client_namespace)
            if settings and settings.get("mode"):
                return str(settings["mode"]).upper()
        workload = endpoint.workload
        if not workload.has_sidecar:
            return TLS_DISABLE
        if self.inbound_mtls_mode(workload.namespace, workload.labels, endpoint.port) == DISABLE:
            return TLS_DISABLE
        return ISTIO_MUTUAL

    # --- endpoints -----------------------------------------------------------------------------
    def endpoints(self, target: RouteTarget, client_namespace: str) -> list[Endpoint]:
        if target.workload is not None:
            return [Endpoint(target.workload, target.port)]
        service = target.service
        if service is None or not service.selector:
            return []
        subset_labels = self.subset_labels(service, target.subset, client_namespace)
        if subset_labels is None:
            return []
        service_port = service.port(target.port)
        if service_port is None:
            return []
        result = []
        for workload in self.workloads:
            if workload.namespace != service.namespace or not workload.ready:
                continue
            if not labels_match(service.selector, workload.labels) or not labels_match(
                subset_labels, workload.labels
            ):
                continue
            port = workload.resolve_target_port(service_port.target_port)
            if port is not None:
                result.append(Endpoint(workload, port))
        return sorted(result, key=lambda e: (e.workload.pod_name, e.port))

    def pick_endpoint(self, target: RouteTarget, client_namespace: str) -> Endpoint | None:
        """Round robin over the target's endpoints (Envoy's default for Istio is least-request; with
        equal load that spreads the same way and is easier to reason about in tests)."""
        found = self.endpoints(target, client_namespace)
        if not found:
            return None
        key = (
            target.service.hostname if target.service else target.workload.ip if target.workload else "",
            target.port,
            target.subset,
        )
        index = self._round_robin.get(key, 0)
        self._round_robin[key] = index + 1
        return found[index % len(found)]

    # --- routing --------------------------------------------------------------------------------
    def _virtual_services_for(
        self, hostname: str, gateway: str | None, request_host: str
    ) -> list[Mapping[str, Any]]:
        found = []
        for vs in self.virtual_services:
            spec, ns = _spec(vs), str(_meta(vs).get("namespace", ""))
            gateways = [str(g) for g in spec.get("gateways", []) or []]
            if gateway is None:
                if gateways and "mesh" not in gateways:
                    continue
                candidate = hostname
            else:
                qualified = [g if "/" in g else f"{ns}/{g}" for g in gateways]
                if gateway not in qualified:
                    continue
                candidate = strip_port(request_host)
            if any(host_matches(_qualify(str(h), ns), candidate) for h in spec.get("hosts", []) or []):
                found.append(vs)
        return found

    def _first_matching_route(
        self,
        virtual_services: list[Mapping[str, Any]],
        request: RequestInfo,
        source_labels: Mapping[str, str],
        source_ns: str,
        gateway: str | None,
    ) -> HttpRoute | None:
        for vs in virtual_services:
            for index, entry in enumerate(_spec(vs).get("http", []) or []):
                matches = entry.get("match") or []
                applicable = [
                    m
                    for m in matches
                    if not m.get("gateways") or (gateway or "mesh") in m.get("gateways", [])
                ]
                if matches and not applicable:
                    continue
                chosen: Mapping[str, Any] | None = None
                if not matches:
                    chosen = {}
                else:
                    for m in applicable:
                        if _match_one(m, request, source_labels, source_ns):
                            chosen = m
                            break
                if chosen is None:
                    continue
                route = _parse_http_route(vs, entry, index)
                prefix = (chosen.get("uri") or {}).get("prefix")
                if prefix is not None:
                    route = _with_prefix(route, str(prefix))
                return route
        return None

    def route_http(
        self,
        request: RequestInfo,
        *,
        service: MeshService | None,
        source_namespace: str,
        source_labels: Mapping[str, str],
        gateway: str | None = None,
        rng: random.Random | None = None,
    ) -> RouteTarget | None:
        """The target of one request, or None when nothing routes it (Envoy answers 404 NR).

        Sidecars route by the service the original destination belongs to; gateways (``gateway`` =
        ``<ns>/<name>``) by the VirtualServices bound to that gateway whose hosts match the
        request's authority."""
        if gateway is None and service is None:
            return None
        hostname = service.hostname if service is not None else ""
        virtual_services = self._virtual_services_for(hostname, gateway, request.authority)
        route = self._first_matching_route(
            virtual_services, request, source_labels, source_namespace, gateway
        )
        if route is None:
            if gateway is not None or service is None:
                return None
            if virtual_services:
                return None
            return RouteTarget(service=service, port=request.port)
        if route.direct_status is not None or not route.destinations:
            return RouteTarget(service=service, port=request.port, route=route)
        destination = _weighted_choice(route.destinations, rng or random.Random())
        dest_service = self.resolve_host(_qualify(destination.host, route.namespace), route.namespace)
        if dest_service is None:
            return RouteTarget(service=None, port=destination.port or request.port, route=route)
        port = destination.port
        if port is None:
            if dest_service.port(request.port) is not None:
                port = request.port
            elif len(dest_service.ports) == 1:
                port = dest_service.ports[0].port
            else:
                port = request.port
        return RouteTarget(service=dest_service, port=port, subset=destination.subset, route=route)

    # --- gateways ---------------------------------------------------------------------------------
    def gateway_servers(self, namespace: str, labels: Mapping[str, str]) -> list[GatewayServer]:
        """The servers of every Gateway selecting this gateway pod, with the port the pod listens on:
        a server port equal to a port of a Service in front of the pod listens on that port's
        targetPort (80 -> 8080), any other number as is."""
        me = MeshWorkload(
            pod_name="",
            namespace=namespace,
            ip="",
            labels=labels,
            service_account="",
            workload_name="",
            named_ports={},
            ports=(),
            ready=True,
        )
        fronting = self.services_of(me)
        servers = []
        for gw in self.gateways:
            spec, meta = _spec(gw), _meta(gw)
            if not labels_match(spec.get("selector") or {}, labels):
                continue
            for server in spec.get("servers", []) or []:
                port = server.get("port") or {}
                number = int(port.get("number", 0))
                listen = number
                for service in fronting:
                    sp = service.port(number)
                    if sp is not None and isinstance(sp.target_port, int):
                        listen = sp.target_port
                        break
                    if sp is not None and str(sp.target_port).isdigit():
                        listen = int(sp.target_port)
                        break
                servers.append(
                    GatewayServer(
                        gateway=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
                        listen_port=listen,
                        number=number,
                        protocol=str(port.get("protocol", "HTTP")).upper(),
                        hosts=tuple(str(h) for h in server.get("hosts", []) or []),
                        tls_mode=str((server.get("tls") or {}).get("mode", "") or "").upper(),
                        credential_name=str((server.get("tls") or {}).get("credentialName", "") or ""),
                    )
                )
        return servers

    def gateway_credential(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The decoded data of a ``credentialName`` secret (istiod sends these to gateways only)."""
        for secret in self.secrets:
            meta = _meta(secret)
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        return None


def _with_prefix(route: HttpRoute, prefix: str) -> HttpRoute:
    return replace(route, matched_prefix=prefix)


def _weighted_choice(destinations: tuple[RouteDestination, ...], rng: random.Random) -> RouteDestination:
    if len(destinations) == 1:
        return destinations[0]
    weights = [d.weight for d in destinations]
    if sum(weights) <= 0:
        return destinations[0]
    return rng.choices(destinations, weights=weights, k=1)[0]


def gateway_host_allowed(server_hosts: Iterable[str], authority: str) -> bool:
    host = strip_port(authority)
    for entry in server_hosts:
        pattern = entry.split("/", 1)[1] if "/" in entry else entry
        if host_matches(pattern, host):
            return True
    return False
