"""Kiali's namespace graph: the Prometheus queries Kiali runs, and the appenders on top.

Per requested namespace, three request queries (unknown sources seen by the destination,
callers from other namespaces seen by the source, callers inside the namespace seen by the
source), the same three for TCP bytes, then the requested appenders (securityPolicy, responseTime),
each with its own queries. Queries run at one evaluation time, so a frozen evaluation time gives a
frozen graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_meshcheck.lab.addons.promapi import PrometheusApi, Sample
from pytest_meshcheck.lab.addons.traffic import (
    GRAPH_TYPES,
    Endpoint,
    TrafficMap,
    add_samples,
    finish,
    hop_of,
    node_identity,
    reduce_to_services,
    split_hop,
)

REQUESTS = "istio_requests_total"
TCP_SENT = "istio_tcp_sent_bytes_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
PEERS = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision"
)
HTTP_GROUP = PEERS + ",request_protocol,response_code,grpc_response_status,response_flags"
TCP_GROUP = PEERS + ",response_flags"
POLICY_GROUP = PEERS + ",source_principal,destination_principal,connection_security_policy"
KNOWN_APPENDERS = (
    "aggregateNode",
    "deadNode",
    "health",
    "idleNode",
    "istio",
    "meshCheck",
    "responseTime",
    "securityPolicy",
    "serviceEntry",
    "sidecarsCheck",
    "throughput",
    "workloadEntry",
)
#: What Kiali runs when the request names no appenders.
DEFAULT_APPENDERS = ("securityPolicy", "responseTime")


class BadGraphRequest(ValueError):
    """The request's parameters are not a graph Kiali would build (HTTP 400)."""


@dataclass(frozen=True, kw_only=True)
class GraphOptions:
    namespaces: tuple[str, ...]
    graph_type: str = "versionedApp"
    duration: int = 600
    inject_service_nodes: bool = True
    appenders: tuple[str, ...] = DEFAULT_APPENDERS
    quantile: float = 0.95
    #: Unix time the queries are evaluated at.
    query_time: float = 0.0

    def __post_init__(self) -> None:
        if self.graph_type not in GRAPH_TYPES:
            raise BadGraphRequest(f"invalid graphType [{self.graph_type}]")
        if not self.namespaces:
            raise BadGraphRequest(
                "at least one namespace must be specified via the namespaces query parameter"
            )
        unknown = [a for a in self.appenders if a not in KNOWN_APPENDERS]
        if unknown:
            raise BadGraphRequest(f"invalid appender [{unknown[0]}]")


def traffic_queries(namespace: str, duration: int) -> list[tuple[str, bool]]:
    """Kiali's traffic queries for one namespace, as (PromQL, is-TCP)."""
    queries: list[tuple[str, bool]] = []
    for metric, group, tcp in ((REQUESTS, HTTP_GROUP, False), (TCP_SENT, TCP_GROUP, True)):
        selectors = (
            f'reporter="destination",source_workload="unknown",destination_workload_namespace="{namespace}"',
            f'reporter="source",source_workload_namespace!="{namespace}",source_workload!="unknown",'
            f'destination_service_namespace="{namespace}"',
            f'reporter="source",source_workload_namespace="{namespace}"',
        )
        for selector in selectors:
            queries.append((f"sum(rate({metric}{{{selector}}}[{duration}s])) by ({group})", tcp))
    return queries


def _outside_inside(namespace: str) -> tuple[str, str]:
    return (
        f'source_workload_namespace!="{namespace}",destination_service_namespace="{namespace}"',
        f'source_workload_namespace="{namespace}"',
    )


def security_queries(namespace: str, duration: int) -> list[str]:
    queries = []
    for where in _outside_inside(namespace):
        parts = [
            f'sum(rate({metric}{{reporter="destination",{where}}}[{duration}s])) by ({POLICY_GROUP}) > 0'
            for metric in (REQUESTS, TCP_SENT)
        ]
        queries.append(f"({parts[0]}) OR ({parts[1]})")
    return queries


def response_time_queries(namespace: str, duration: int, quantile: float) -> list[str]:
    return [
        f'histogram_quantile({quantile}, sum(rate({DURATION_BUCKETS}{{reporter="destination",{where}}}'
        f"[{duration}s])) by (le,{PEERS})) > 0"
        for where in _outside_inside(namespace)
    ]


def _edge_keys(traffic: TrafficMap, sample: Sample, inject: bool) -> list[tuple[str, str]]:
    hop = hop_of(sample, tcp=False)
    if hop is None:
        return []
    keys = []
    for source, dest in split_hop(hop, traffic.graph_type, inject):
        keys.append((_id(source, traffic), _id(dest, traffic)))
    return keys


def _id(end: Endpoint, traffic: TrafficMap) -> str:
    return node_identity(end, traffic.graph_type)[0]


def apply_security_policy(traffic: TrafficMap, samples: list[Sample], inject: bool) -> None:
    """isMTLS: the share of an edge's traffic (reported by the destination) that used mTLS."""
    policies: dict[tuple[str, str], dict[str, float]] = {}
    principals: dict[tuple[str, str], tuple[str, str]] = {}
    for sample in samples:
        policy = sample.labels.get("connection_security_policy", "")
        for key in _edge_keys(traffic, sample, inject):
            by_policy = policies.setdefault(key, {})
            by_policy[policy] = by_policy.get(policy, 0.0) + sample.value
            principals.setdefault(
                key,
                (sample.labels.get("source_principal", ""), sample.labels.get("destination_principal", "")),
            )
    for edge in traffic.edges():
        key = (edge.source.id, edge.dest.id)
        rates = policies.get(key)
        if rates:
            mtls = rates.get("mutual_tls", 0.0)
            if mtls > 0:
                edge.mtls_percent = mtls / sum(rates.values()) * 100
        if key in principals:
            edge.source_principal, edge.dest_principal = principals[key]


def apply_response_time(traffic: TrafficMap, samples: list[Sample], inject: bool) -> None:
    """responseTime: the requested quantile of the destination-reported request duration."""
    times: dict[tuple[str, str], float] = {}
    for sample in samples:
        for key in _edge_keys(traffic, sample, inject):
            times[key] = max(times.get(key, 0.0), sample.value)
    for edge in traffic.edges():
        if edge.protocol != "tcp" and (edge.source.id, edge.dest.id) in times:
            edge.response_time = times[(edge.source.id, edge.dest.id)]


def build_graph(prometheus: PrometheusApi, options: GraphOptions) -> TrafficMap:
    """The traffic map for ``options``; raises ``PrometheusUnavailable`` when a query fails."""
    working_type = "workload" if options.graph_type == "service" else options.graph_type
    inject = options.inject_service_nodes or options.graph_type == "service"
    merged = TrafficMap(working_type)
    for namespace in options.namespaces:
        traffic = TrafficMap(working_type)
        for promql, tcp in traffic_queries(namespace, options.duration):
            samples = prometheus.query(promql, options.query_time)
            add_samples(traffic, samples, tcp=tcp, inject_service_nodes=inject)
        if "securityPolicy" in options.appenders and traffic.nodes:
            samples = []
            for promql in security_queries(namespace, options.duration):
                samples += prometheus.query(promql, options.query_time)
            apply_security_policy(traffic, samples, inject)
        if "responseTime" in options.appenders and traffic.nodes:
            samples = []
            for promql in response_time_queries(namespace, options.duration, options.quantile):
                samples += prometheus.query(promql, options.query_time)
            apply_response_time(traffic, samples, inject)
        _merge_into(merged, traffic)
    finish(merged, options.namespaces)
    if options.graph_type == "service":
        merged = reduce_to_services(merged)
        finish(merged, options.namespaces)
    return merged


def _merge_into(merged: TrafficMap, traffic: TrafficMap) -> None:
    """Add a namespace's map; a hop both namespaces saw (a cross-namespace call) counts once."""
    edges = traffic.edges()
    for node_id, node in traffic.nodes.items():
        if node_id not in merged.nodes:
            node.edges = []
            merged.nodes[node_id] = node
    for edge in edges:
        source = merged.nodes[edge.source.id]
        if any(e.dest.id == edge.dest.id and e.protocol == edge.protocol for e in source.edges):
            continue
        edge.source = source
        edge.dest = merged.nodes[edge.dest.id]
        source.edges.append(edge)
