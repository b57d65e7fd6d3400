"""A traffic map as Kiali's Cytoscape JSON: the field names and number formats Kiali's API uses.

Node and edge ids are MD5 digests of Kiali's node ids (and of source, target and protocol), rates
are strings with at least the protocol's precision, percentages have one decimal, ``isMTLS`` and
``responseTime`` have none; empty fields are left out, as Kiali's ``omitempty`` leaves them out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pytest_meshcheck.lab.addons.traffic import Edge, Node, TrafficMap

#: Node rates per protocol (edge rates are the protocol name plus the same suffixes).
NODE_RATES = {
    "http": ("In", "In3xx", "In4xx", "In5xx", "InNoResponse", "Out"),
    "grpc": ("In", "InErr", "InNoResponse", "Out"),
    "tcp": ("In", "Out"),
}
EDGE_RATES = {
    "http": ("", "3xx", "4xx", "5xx", "NoResponse"),
    "grpc": ("", "Err", "NoResponse"),
    "tcp": ("",),
}
#: The edge rates that count as errors in ``<protocol>PercentErr``.
ERROR_RATES = {"http": ("4xx", "5xx", "NoResponse"), "grpc": ("Err", "NoResponse")}
RATE_PRECISION = 2
PERCENT_PRECISION = 1


def digest(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def rate_text(value: float, minimum: int = RATE_PRECISION) -> str:
    """At least ``minimum`` decimals, more (up to 5) until one significant digit shows."""
    precision = minimum
    if 0 < value < 1:
        needed = 0
        scaled = value
        while scaled < 1 and needed < 5:
            scaled *= 10
            needed += 1
        precision = max(precision, needed)
    return f"{value:.{precision}f}"


def _node_traffic(node: Node) -> list[dict[str, Any]]:
    traffic = []
    for protocol, suffixes in NODE_RATES.items():
        rates = {
            f"{protocol}{suffix}": rate_text(node.rates[f"{protocol}{suffix}"])
            for suffix in suffixes
            if node.rates.get(f"{protocol}{suffix}", 0.0) > 0
        }
        if rates:
            traffic.append({"protocol": protocol, "rates": rates})
    return traffic


def node_data(node: Node) -> dict[str, Any]:
    data: dict[str, Any] = {"id": digest(node.id), "nodeType": node.node_type, "cluster": node.cluster}
    data["namespace"] = node.namespace
    for name, value in (("workload", node.workload), ("app", node.app), ("version", node.version)):
        if value:
            data[name] = value
    if node.service:
        data["service"] = node.service
    if node.dest_services:
        data["destServices"] = [
            {"cluster": node.cluster, "namespace": ns, "name": name}
            for ns, name in node.dest_services.values()
        ]
    traffic = _node_traffic(node)
    if traffic:
        data["traffic"] = traffic
    if node.is_outside:
        data["isOutside"] = True
    if node.is_root:
        data["isRoot"] = True
    return data


def _edge_traffic(edge: Edge) -> dict[str, Any]:
    protocol = edge.protocol
    traffic: dict[str, Any] = {"protocol": protocol}
    total = edge.total
    rates = {
        f"{protocol}{suffix}": rate_text(edge.rates[f"{protocol}{suffix}"])
        for suffix in EDGE_RATES.get(protocol, ("",))
        if edge.rates.get(f"{protocol}{suffix}", 0.0) > 0
    }
    if not rates or total <= 0:
        return traffic
    errors = sum(edge.rates.get(f"{protocol}{suffix}", 0.0) for suffix in ERROR_RATES.get(protocol, ()))
    if errors > 0:
        rates[f"{protocol}PercentErr"] = f"{errors / total * 100:.{PERCENT_PRECISION}f}"
    sent = edge.source.rates.get(f"{protocol}Out", 0.0)
    if sent > 0:
        rates[f"{protocol}PercentReq"] = f"{total / sent * 100:.{PERCENT_PRECISION}f}"
    traffic["rates"] = rates
    traffic["responses"] = {
        code: {
            "flags": {flag: f"{value / total * 100:.1f}" for flag, value in detail.flags.items()},
            "hosts": {host: f"{value / total * 100:.1f}" for host, value in detail.hosts.items()},
        }
        for code, detail in edge.responses.items()
    }
    return traffic


def edge_data(edge: Edge) -> dict[str, Any]:
    source, target = digest(edge.source.id), digest(edge.dest.id)
    data: dict[str, Any] = {
        "id": digest(f"{source}.{target}.{edge.protocol}"),
        "source": source,
        "target": target,
        "traffic": _edge_traffic(edge),
    }
    if edge.mtls_percent is not None:
        data["isMTLS"] = f"{edge.mtls_percent:.0f}"
    if edge.response_time is not None:
        data["responseTime"] = f"{edge.response_time:.0f}"
    if edge.source_principal:
        data["sourcePrincipal"] = edge.source_principal
    if edge.dest_principal:
        data["destPrincipal"] = edge.dest_principal
    return data


def _node_order(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(data.get(k, "")) for k in ("namespace", "app", "version", "service", "workload"))


def cytoscape(traffic: TrafficMap, *, graph_type: str, duration: int, timestamp: int) -> dict[str, Any]:
    nodes = sorted((node_data(n) for n in traffic.nodes.values()), key=_node_order)
    edges = sorted((edge_data(e) for e in traffic.edges()), key=lambda d: (d["source"], d["target"]))
    return {
        "timestamp": timestamp,
        "duration": duration,
        "graphType": graph_type,
        "elements": {"nodes": [{"data": n} for n in nodes], "edges": [{"data": e} for e in edges]},
    }
