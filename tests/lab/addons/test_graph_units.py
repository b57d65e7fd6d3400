"""Kiali's graph model on samples (no Prometheus): node ids and types, service-node injection,
rates, mTLS share, outsiders and roots, and the Cytoscape JSON."""

from __future__ import annotations

from bookinfo_traffic import DETAILS, GATEWAY, PRODUCTPAGE, RATINGS, REVIEWS, SERVICE_OF
from istio_series import Peer, request_labels

from pytest_meshcheck.lab.addons.cytoscape import cytoscape, digest, rate_text
from pytest_meshcheck.lab.addons.graph import GraphOptions, apply_security_policy
from pytest_meshcheck.lab.addons.promapi import Sample, parse_vector
from pytest_meshcheck.lab.addons.traffic import TrafficMap, add_samples, finish, reduce_to_services


def sample(source: Peer, dest: Peer, rate: float, *, code: int = 200, mtls: bool = True) -> Sample:
    labels = request_labels(source, dest, SERVICE_OF[dest.app], reporter="source", code=code, mtls=mtls)
    return Sample(labels=labels, value=rate)


def bookinfo_samples() -> list[Sample]:
    return [
        sample(GATEWAY, PRODUCTPAGE, 4.0),
        sample(PRODUCTPAGE, DETAILS, 4.0),
        sample(PRODUCTPAGE, REVIEWS["v1"], 1.0),
        sample(PRODUCTPAGE, REVIEWS["v2"], 1.0),
        sample(PRODUCTPAGE, REVIEWS["v3"], 1.0),
        sample(PRODUCTPAGE, REVIEWS["v3"], 1.0, code=503),
        sample(REVIEWS["v2"], RATINGS, 1.0),
        sample(REVIEWS["v3"], RATINGS, 2.0),
    ]


def build(graph_type: str, inject: bool, samples: list[Sample]) -> TrafficMap:
    traffic = TrafficMap(graph_type)
    add_samples(traffic, samples, tcp=False, inject_service_nodes=inject)
    finish(traffic, ["bookinfo"])
    return traffic


def names(traffic: TrafficMap) -> set[tuple[str, str]]:
    return {(e.source.id, e.dest.id) for e in traffic.edges()}


def test_versioned_app_edges_without_service_nodes() -> None:
    traffic = build("versionedApp", False, bookinfo_samples())
    c = "Kubernetes"
    assert names(traffic) == {
        (f"vapp_{c}_istio-system_istio-ingressgateway", f"vapp_{c}_bookinfo_productpage-v1"),
        (f"vapp_{c}_bookinfo_productpage-v1", f"vapp_{c}_bookinfo_details-v1"),
        (f"vapp_{c}_bookinfo_productpage-v1", f"vapp_{c}_bookinfo_reviews-v1"),
        (f"vapp_{c}_bookinfo_productpage-v1", f"vapp_{c}_bookinfo_reviews-v2"),
        (f"vapp_{c}_bookinfo_productpage-v1", f"vapp_{c}_bookinfo_reviews-v3"),
        (f"vapp_{c}_bookinfo_reviews-v2", f"vapp_{c}_bookinfo_ratings-v1"),
        (f"vapp_{c}_bookinfo_reviews-v3", f"vapp_{c}_bookinfo_ratings-v1"),
    }
    gateway = traffic.nodes[f"vapp_{c}_istio-system_istio-ingressgateway"]
    assert gateway.is_root and gateway.is_outside
    assert not traffic.nodes[f"vapp_{c}_bookinfo_productpage-v1"].is_root


def test_service_nodes_are_injected_and_app_graph_merges_versions() -> None:
    traffic = build("versionedApp", True, bookinfo_samples())
    c = "Kubernetes"
    assert (f"vapp_{c}_bookinfo_productpage-v1", f"svc_{c}_bookinfo_reviews") in names(traffic)
    assert (f"svc_{c}_bookinfo_reviews", f"vapp_{c}_bookinfo_reviews-v3") in names(traffic)
    app = build("app", False, bookinfo_samples())
    assert (f"app_{c}_bookinfo_productpage", f"app_{c}_bookinfo_reviews") in names(app)
    assert (f"app_{c}_bookinfo_reviews", f"app_{c}_bookinfo_ratings") in names(app)
    workload = build("workload", False, bookinfo_samples())
    assert (f"wl_{c}_bookinfo_reviews-v2", f"wl_{c}_bookinfo_ratings-v1") in names(workload)


def test_service_graph_connects_services() -> None:
    traffic = build("workload", True, bookinfo_samples())
    reduced = reduce_to_services(traffic)
    finish(reduced, ["bookinfo"])
    c = "Kubernetes"
    assert (f"svc_{c}_bookinfo_reviews", f"svc_{c}_bookinfo_ratings") in names(reduced)
    assert (f"wl_{c}_istio-system_istio-ingressgateway", f"svc_{c}_bookinfo_productpage") in names(reduced)
    assert all(n.node_type == "service" or n.is_root for n in reduced.nodes.values())


def test_cytoscape_rates_percentages_and_ids() -> None:
    traffic = build("versionedApp", False, bookinfo_samples())
    body = cytoscape(traffic, graph_type="versionedApp", duration=60, timestamp=1700000000)
    assert body["timestamp"] == 1700000000 and body["duration"] == 60 and body["graphType"] == "versionedApp"
    nodes = {n["data"]["id"]: n["data"] for n in body["elements"]["nodes"]}
    edges = [e["data"] for e in body["elements"]["edges"]]
    productpage_id = digest("vapp_Kubernetes_bookinfo_productpage-v1")
    reviews3_id = digest("vapp_Kubernetes_bookinfo_reviews-v3")
    productpage = nodes[productpage_id]
    assert productpage["nodeType"] == "app" and productpage["app"] == "productpage"
    assert productpage["version"] == "v1" and productpage["workload"] == "productpage-v1"
    assert productpage["traffic"] == [{"protocol": "http", "rates": {"httpIn": "4.00", "httpOut": "8.00"}}]
    edge = next(e for e in edges if e["source"] == productpage_id and e["target"] == reviews3_id)
    assert edge["id"] == digest(f"{productpage_id}.{reviews3_id}.http")
    rates = edge["traffic"]["rates"]
    assert rates == {"http": "2.00", "http5xx": "1.00", "httpPercentErr": "50.0", "httpPercentReq": "25.0"}
    responses = edge["traffic"]["responses"]
    assert responses["503"]["flags"] == {"-": "50.0"}
    assert responses["200"]["hosts"] == {"reviews.bookinfo.svc.cluster.local": "50.0"}
    assert nodes[reviews3_id]["traffic"][0]["rates"]["httpIn5xx"] == "1.00"
    assert "isMTLS" not in edge  # only the securityPolicy appender sets it


def test_security_policy_share_and_principals() -> None:
    samples = bookinfo_samples()
    traffic = build("versionedApp", False, samples)
    policy = [
        Sample({**s.labels, "reporter": "destination"}, s.value)
        for s in samples
        if "reviews-v3" not in (s.labels["source_workload"], s.labels["destination_workload"])
    ]
    policy += [
        sample(REVIEWS["v3"], RATINGS, 1.0),
        Sample({**sample(REVIEWS["v3"], RATINGS, 3.0, mtls=False).labels}, 3.0),
    ]
    apply_security_policy(traffic, policy, inject=False)
    edges = {(e.source.workload, e.dest.workload): e for e in traffic.edges()}
    assert edges[("productpage-v1", "details-v1")].mtls_percent == 100.0
    assert edges[("reviews-v3", "ratings-v1")].mtls_percent == 25.0
    assert edges[("productpage-v1", "reviews-v3")].mtls_percent is None  # no destination telemetry given
    assert edges[("reviews-v2", "ratings-v1")].source_principal == (
        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    )
    assert (
        edges[("reviews-v2", "ratings-v1")].dest_principal
        == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    )


def test_unknown_source_and_bad_telemetry() -> None:
    unknown = Peer("unknown", "unknown", "unknown", "unknown")
    samples = [Sample(request_labels(unknown, PRODUCTPAGE, "productpage", reporter="destination"), 1.0)]
    bad = request_labels(PRODUCTPAGE, DETAILS, "details", reporter="source")
    bad["source_workload_namespace"] = "unknown"  # workload known but namespace not: discarded
    samples.append(Sample(bad, 5.0))
    traffic = build("versionedApp", False, samples)
    assert names(traffic) == {("Kubernetes_unknown_source", "vapp_Kubernetes_bookinfo_productpage-v1")}
    assert traffic.nodes["Kubernetes_unknown_source"].node_type == "unknown"
    assert traffic.nodes["Kubernetes_unknown_source"].is_root


def test_empty_telemetry_gives_an_empty_graph() -> None:
    body = cytoscape(build("versionedApp", True, []), graph_type="versionedApp", duration=60, timestamp=1)
    assert body["elements"] == {"nodes": [], "edges": []}


def test_rate_text_and_vector_parsing() -> None:
    assert rate_text(2.0) == "2.00"
    assert rate_text(0.0004) == "0.0004"
    payload = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1, "NaN"]},
                                                    {"metric": {"a": "c"}, "value": [1, "1.5"]}]},
    }  # fmt: skip
    assert parse_vector(payload) == [Sample({"a": "c"}, 1.5)]


def test_options_validate_like_kiali() -> None:
    import pytest

    from pytest_meshcheck.lab.addons.graph import BadGraphRequest

    with pytest.raises(BadGraphRequest, match="graphType"):
        GraphOptions(namespaces=("a",), graph_type="bogus")
    with pytest.raises(BadGraphRequest, match="namespace"):
        GraphOptions(namespaces=())
    with pytest.raises(BadGraphRequest, match="appender"):
        GraphOptions(namespaces=("a",), appenders=("nope",))
