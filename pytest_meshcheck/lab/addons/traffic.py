"""Kiali's traffic map: nodes and edges built from Istio's request and TCP metrics.

The node identities, node types and the handling of unknown sources, service-node injection,
outsiders and roots follow Kiali's documented graph model, so the same telemetry gives the same
graph: a hop that has no series in the query window has no edge; a workload whose telemetry is
stale keeps only what the window still holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_meshcheck.lab.addons.promapi import Sample

UNKNOWN = "unknown"
DEFAULT_CLUSTER = "Kubernetes"
GRAPH_TYPES = ("app", "versionedApp", "workload", "service")

NODE_APP = "app"
NODE_SERVICE = "service"
NODE_WORKLOAD = "workload"
NODE_UNKNOWN = "unknown"


def is_ok(value: str) -> bool:
    return value not in ("", UNKNOWN)


@dataclass(frozen=True)
class Endpoint:
    """One end of a sample, as the graph needs it (service fields only set on service nodes)."""

    cluster: str
    service_namespace: str
    service: str
    workload_namespace: str
    workload: str
    app: str
    version: str


def node_identity(end: Endpoint, graph_type: str) -> tuple[str, str]:
    """(id, nodeType) for an endpoint in a graph of ``graph_type``."""
    namespace = end.workload_namespace if is_ok(end.workload_namespace) else end.service_namespace
    cluster = end.cluster
    if namespace == UNKNOWN and end.workload == UNKNOWN and end.app == UNKNOWN and end.service == "":
        return f"{cluster}_unknown_source", NODE_UNKNOWN
    if end.workload == UNKNOWN and end.app == UNKNOWN and end.service == UNKNOWN:
        return f"svc_{cluster}_{namespace}_unknown", NODE_SERVICE
    workload_ok, app_ok, service_ok = is_ok(end.workload), is_ok(end.app), is_ok(end.service)
    if not (workload_ok or app_ok or service_ok):
        raise ValueError(f"endpoint without workload, app or service: {end}")
    if graph_type in ("workload", "service"):
        if not workload_ok:
            return f"svc_{cluster}_{namespace}_{end.service}", NODE_SERVICE
        return f"wl_{cluster}_{namespace}_{end.workload}", NODE_WORKLOAD
    if app_ok:
        if graph_type == "versionedApp":
            if workload_ok:
                return f"vapp_{cluster}_{namespace}_{end.workload}", NODE_APP
            if is_ok(end.version):
                return f"vapp_{cluster}_{namespace}_{end.app}_{end.version}", NODE_APP
        return f"app_{cluster}_{namespace}_{end.app}", NODE_APP
    if workload_ok:
        return f"wl_{cluster}_{namespace}_{end.workload}", NODE_WORKLOAD
    return f"svc_{cluster}_{namespace}_{end.service}", NODE_SERVICE


@dataclass
class Responses:
    flags: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, float] = field(default_factory=dict)


@dataclass
class Node:
    id: str
    node_type: str
    cluster: str
    namespace: str
    workload: str
    app: str
    version: str
    service: str
    edges: list[Edge] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    dest_services: dict[str, tuple[str, str]] = field(default_factory=dict)
    is_root: bool = False
    is_outside: bool = False


@dataclass
class Edge:
    source: Node
    dest: Node
    protocol: str
    rates: dict[str, float] = field(default_factory=dict)
    responses: dict[str, Responses] = field(default_factory=dict)
    #: Percentage of the edge's traffic that used mutual TLS (securityPolicy appender).
    mtls_percent: float | None = None
    source_principal: str = ""
    dest_principal: str = ""
    #: Milliseconds at the requested quantile (responseTime appender).
    response_time: float | None = None

    @property
    def total(self) -> float:
        return self.rates.get(self.protocol, 0.0)


def new_node(end: Endpoint, graph_type: str) -> Node:
    node_id, node_type = node_identity(end, graph_type)
    namespace = end.workload_namespace if is_ok(end.workload_namespace) else end.service_namespace
    workload, app, version, service = end.workload, end.app, end.version, end.service
    if node_type == NODE_UNKNOWN:
        workload, app, version, service = UNKNOWN, UNKNOWN, "", ""
    elif node_type == NODE_SERVICE:
        workload, app, version = "", "", ""
    elif node_type == NODE_APP:
        service = ""
        if graph_type == "app":
            workload, version = "", ""
    else:
        app = "" if app == UNKNOWN else app
        version = "" if version == UNKNOWN else version
        service = ""
    return Node(node_id, node_type, end.cluster, namespace, workload, app, version, service)


class TrafficMap:
    """Nodes by id; edges hang off their source node, one per destination and protocol."""

    def __init__(self, graph_type: str) -> None:
        self.graph_type = graph_type
        self.nodes: dict[str, Node] = {}

    def node(self, end: Endpoint) -> Node:
        node_id, _ = node_identity(end, self.graph_type)
        if node_id not in self.nodes:
            self.nodes[node_id] = new_node(end, self.graph_type)
        return self.nodes[node_id]

    def edge(self, source: Node, dest: Node, protocol: str) -> Edge:
        for edge in source.edges:
            if edge.dest is dest and edge.protocol == protocol:
                return edge
        edge = Edge(source, dest, protocol)
        source.edges.append(edge)
        return edge

    def edges(self) -> list[Edge]:
        return [edge for node in self.nodes.values() for edge in node.edges]


def _label(sample: Sample, name: str) -> str:
    return sample.labels.get(name, "")


@dataclass(frozen=True)
class Hop:
    """What one sample says: who called which service and workload, how."""

    source: Endpoint
    dest: Endpoint
    host: str
    protocol: str
    code: str
    flags: str


def hop_of(sample: Sample, *, tcp: bool) -> Hop | None:
    """The hop a sample describes, or None for telemetry Kiali discards as bad."""
    src_ns, src_wl = _label(sample, "source_workload_namespace"), _label(sample, "source_workload")
    src_app = _label(sample, "source_canonical_service")
    if (not is_ok(src_ns) and is_ok(src_wl)) or (not is_ok(src_wl) and is_ok(src_app)):
        return None
    dest_svc_ns = _label(sample, "destination_service_namespace")
    dest_wl_ns = _label(sample, "destination_workload_namespace")
    host = _label(sample, "destination_service") or UNKNOWN
    dest_svc_name = _label(sample, "destination_service_name") or UNKNOWN
    dest_wl = _label(sample, "destination_workload") or UNKNOWN
    if not is_ok(dest_svc_ns):
        dest_svc_ns = dest_wl_ns if is_ok(dest_wl_ns) else src_ns
    if is_ok(host) and not is_ok(dest_svc_name) and not is_ok(dest_wl):
        return None
    source = Endpoint(
        cluster=_label(sample, "source_cluster") or DEFAULT_CLUSTER,
        service_namespace=src_ns or UNKNOWN,
        service="",
        workload_namespace=src_ns or UNKNOWN,
        workload=src_wl or UNKNOWN,
        app=src_app or UNKNOWN,
        version=_label(sample, "source_canonical_revision") or UNKNOWN,
    )
    dest = Endpoint(
        cluster=_label(sample, "destination_cluster") or DEFAULT_CLUSTER,
        service_namespace=dest_svc_ns,
        service=dest_svc_name,
        workload_namespace=dest_wl_ns or UNKNOWN,
        workload=dest_wl,
        app=_label(sample, "destination_canonical_service") or UNKNOWN,
        version=_label(sample, "destination_canonical_revision") or UNKNOWN,
    )
    protocol = "tcp" if tcp else (_label(sample, "request_protocol") or "http")
    code = "-" if tcp else _response_code(sample, protocol)
    return Hop(source, dest, host, protocol, code, _label(sample, "response_flags") or "-")


def _response_code(sample: Sample, protocol: str) -> str:
    if protocol == "grpc":
        status = _label(sample, "grpc_response_status")
        if status:
            return status
    code = _label(sample, "response_code")
    return "-" if code in ("", "0") else code


def service_endpoint(dest: Endpoint) -> Endpoint:
    """The service node injected in front of a destination workload."""
    return Endpoint(dest.cluster, dest.service_namespace, dest.service, "", "", "", "")


def split_hop(hop: Hop, graph_type: str, inject_service_nodes: bool) -> list[tuple[Endpoint, Endpoint]]:
    """The edges one hop contributes: source -> dest, or source -> service -> dest."""
    if inject_service_nodes and is_ok(hop.dest.service):
        _, dest_type = node_identity(hop.dest, graph_type)
        if dest_type != NODE_SERVICE:
            service = service_endpoint(hop.dest)
            return [(hop.source, service), (service, hop.dest)]
    return [(hop.source, hop.dest)]


def add_samples(
    traffic: TrafficMap, samples: Iterable[Sample], *, tcp: bool, inject_service_nodes: bool
) -> None:
    for sample in samples:
        hop = hop_of(sample, tcp=tcp)
        if hop is None:
            continue
        for source_end, dest_end in split_hop(hop, traffic.graph_type, inject_service_nodes):
            source = traffic.node(source_end)
            dest = traffic.node(dest_end)
            if is_ok(dest_end.service):
                dest.dest_services[f"{dest_end.service_namespace} {dest_end.service}"] = (
                    dest_end.service_namespace,
                    dest_end.service,
                )
            edge = traffic.edge(source, dest, hop.protocol)
            _count(edge, hop, sample.value)


def _count(edge: Edge, hop: Hop, value: float) -> None:
    protocol = hop.protocol
    edge.rates[protocol] = edge.rates.get(protocol, 0.0) + value
    for suffix in _error_classes(protocol, hop.code):
        edge.rates[protocol + suffix] = edge.rates.get(protocol + suffix, 0.0) + value
    detail = edge.responses.setdefault(hop.code, Responses())
    detail.flags[hop.flags] = detail.flags.get(hop.flags, 0.0) + value
    detail.hosts[hop.host] = detail.hosts.get(hop.host, 0.0) + value


def _error_classes(protocol: str, code: str) -> tuple[str, ...]:
    """Rate name suffixes a response code counts towards (``http5xx``, ``httpNoResponse`` ...)."""
    if protocol == "tcp":
        return ()
    if protocol == "grpc":
        if code == "-":
            return ("NoResponse",)
        return () if code == "0" else ("Err",)
    if code == "-":
        return ("NoResponse",)
    if code[:1] in ("3", "4", "5"):
        return (f"{code[0]}xx",)
    return ()


def finish(traffic: TrafficMap, namespaces: Iterable[str]) -> None:
    """Node rates from their edges, then outsiders and roots, as Kiali marks them."""
    requested = set(namespaces)
    incoming: set[str] = set()
    for edge in traffic.edges():
        incoming.add(edge.dest.id)
        source_rates, dest_rates = edge.source.rates, edge.dest.rates
        out_key, in_key = f"{edge.protocol}Out", f"{edge.protocol}In"
        source_rates[out_key] = source_rates.get(out_key, 0.0) + edge.total
        dest_rates[in_key] = dest_rates.get(in_key, 0.0) + edge.total
        for name, value in edge.rates.items():
            if name != edge.protocol:
                key = in_key + name[len(edge.protocol) :]
                dest_rates[key] = dest_rates.get(key, 0.0) + value
    for node in traffic.nodes.values():
        if node.node_type != NODE_UNKNOWN and node.namespace not in requested:
            node.is_outside = True
        if node.edges and node.id not in incoming:
            node.is_root = True


def reduce_to_services(traffic: TrafficMap) -> TrafficMap:
    """The service graph: service nodes and traffic generators; service -> workload -> service
    paths become service -> service edges carrying the outbound hop's traffic."""
    reduced = TrafficMap("service")
    keep = {
        node_id: node
        for node_id, node in traffic.nodes.items()
        if node.node_type in (NODE_SERVICE, NODE_UNKNOWN) or node.is_root
    }
    for node_id, node in keep.items():
        reduced.nodes[node_id] = Node(
            node.id, node.node_type, node.cluster, node.namespace, node.workload, node.app, node.version,
            node.service, is_root=node.is_root, is_outside=node.is_outside,
            dest_services=dict(node.dest_services),
        )  # fmt: skip
    for node_id, node in keep.items():
        source = reduced.nodes[node_id]
        for edge in node.edges:
            targets = [edge] if edge.dest.id in keep else [e for e in edge.dest.edges if e.dest.id in keep]
            for hop in targets:
                merged = reduced.edge(source, reduced.nodes[hop.dest.id], hop.protocol)
                _merge(merged, hop)
    for node in reduced.nodes.values():
        node.rates = {}
    return reduced


def _merge(target: Edge, edge: Edge) -> None:
    for name, value in edge.rates.items():
        target.rates[name] = target.rates.get(name, 0.0) + value
    for code, detail in edge.responses.items():
        into = target.responses.setdefault(code, Responses())
        for flag, value in detail.flags.items():
            into.flags[flag] = into.flags.get(flag, 0.0) + value
        for host, value in detail.hosts.items():
            into.hosts[host] = into.hosts.get(host, 0.0) + value
    if edge.mtls_percent is not None:
        target.mtls_percent = edge.mtls_percent
    target.source_principal = target.source_principal or edge.source_principal
    target.dest_principal = target.dest_principal or edge.dest_principal
    if edge.response_time is not None:
        target.response_time = max(target.response_time or 0.0, edge.response_time)
