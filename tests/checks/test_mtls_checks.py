"""XFCC parsing, httpbin header shapes, Kiali edge reading."""

from __future__ import annotations

import json

from pytest_meshcheck.checks.graph import SeenEdge, seen_edges
from pytest_meshcheck.checks.mtls import parse_xfcc, spiffe_id, xfcc_from_httpbin

XFCC = (
    'By=spiffe://cluster.local/ns/probe/sa/httpbin;Hash=ab12;Subject="";'
    "URI=spiffe://cluster.local/ns/probe/sa/curl"
)


def test_parse_envoy_xfcc() -> None:
    (element,) = parse_xfcc(XFCC)
    assert element.by == spiffe_id("probe", "httpbin")
    assert element.uri == spiffe_id("probe", "curl")
    assert element.hash == "ab12"
    assert element.subject == ""


def test_multiple_hops_are_separate_elements() -> None:
    assert [e.uri for e in parse_xfcc(XFCC + ",By=spiffe://x/ns/a/sa/b;URI=spiffe://x/ns/c/sa/d")] == [
        spiffe_id("probe", "curl"),
        "spiffe://x/ns/c/sa/d",
    ]


def test_header_from_both_httpbins() -> None:
    go = json.dumps({"headers": {"X-Forwarded-Client-Cert": [XFCC]}})
    py = json.dumps({"headers": {"X-Forwarded-Client-Cert": XFCC}})
    assert xfcc_from_httpbin(go) == XFCC
    assert xfcc_from_httpbin(py) == XFCC
    assert xfcc_from_httpbin(json.dumps({"headers": {}})) == ""
    assert xfcc_from_httpbin("not json") == ""


def test_graph_edges_are_named_by_app_and_version() -> None:
    graph = {
        "elements": {
            "nodes": [
                {"data": {"id": "n1", "namespace": "bookinfo", "app": "reviews", "version": "v2"}},
                {"data": {"id": "n2", "namespace": "bookinfo", "app": "ratings", "version": "v1"}},
            ],
            "edges": [{"data": {"id": "e1", "source": "n1", "target": "n2", "isMTLS": "100"}}],
        }
    }
    (edge,) = seen_edges(graph)
    assert (edge.source_name, edge.target_name) == ("bookinfo/reviews v2", "bookinfo/ratings v1")
    assert edge.mtls_percent == 100.0
    assert SeenEdge(source={}, target={}, data={}).mtls_percent == 0.0
