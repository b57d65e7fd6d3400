from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshlab_objects import group, istio, peer_auth, pod, service

from pytest_meshcheck.lab.mesh.config import (
    MeshConfig,
    RequestInfo,
    RouteTarget,
    gateway_host_allowed,
    parse_duration,
)

NS = "bookinfo"


def bookinfo_objects() -> list[dict[str, Any]]:
    return [
        pod(
            "productpage-v1-a",
            NS,
            "127.3.1.1",
            {"app": "productpage", "version": "v1"},
            workload="productpage-v1",
        ),
        pod("reviews-v1-a", NS, "127.3.1.2", {"app": "reviews", "version": "v1"}, workload="reviews-v1"),
        pod("reviews-v2-a", NS, "127.3.1.3", {"app": "reviews", "version": "v2"}, workload="reviews-v2"),
        pod("reviews-v3-a", NS, "127.3.1.4", {"app": "reviews", "version": "v3"}, workload="reviews-v3"),
        pod("ratings-v1-a", NS, "127.3.1.5", {"app": "ratings", "version": "v1"}, workload="ratings-v1"),
        pod("legacy", "legacy", "127.3.1.6", {"app": "legacy"}, sidecar=False),
        service("productpage", NS, "127.3.200.1", {"app": "productpage"}),
        service("reviews", NS, "127.3.200.2", {"app": "reviews"}),
        service("ratings", NS, "127.3.200.3", {"app": "ratings"}),
        service("legacy", "legacy", "127.3.200.4", {"app": "legacy"}),
        istio(
            "DestinationRule",
            "reviews",
            NS,
            {
                "host": "reviews",
                "subsets": [{"name": n, "labels": {"version": n}} for n in ("v1", "v2", "v3")],
            },
        ),
    ]


def config_of(objects: list[dict[str, Any]]) -> MeshConfig:
    return MeshConfig(group(objects))


def route(
    cfg: MeshConfig,
    path: str = "/",
    headers: dict[str, str] | None = None,
    host: str = "reviews",
    rng: random.Random | None = None,
) -> RouteTarget | None:
    svc = cfg.resolve_host(host, NS)
    request = RequestInfo(authority=f"{host}:9080", path=path, headers=headers or {}, port=9080)
    return cfg.route_http(
        request, service=svc, source_namespace=NS, source_labels={"app": "productpage"}, rng=rng
    )


def test_default_route_spreads_over_all_endpoints() -> None:
    cfg = config_of(bookinfo_objects())
    target = route(cfg)
    assert target is not None and target.service is not None
    assert target.service.hostname == "reviews.bookinfo.svc.cluster.local"
    picked = {cfg.pick_endpoint(target, NS).workload.pod_name for _ in range(3)}  # type: ignore[union-attr]
    assert picked == {"reviews-v1-a", "reviews-v2-a", "reviews-v3-a"}


def test_header_match_and_subsets() -> None:
    vs = istio(
        "VirtualService",
        "reviews",
        NS,
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                },
                {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
            ],
        },
    )
    cfg = config_of([*bookinfo_objects(), vs])
    jason = route(cfg, headers={"End-User": "jason"})
    assert jason is not None and jason.subset == "v2"
    assert [e.workload.pod_name for e in cfg.endpoints(jason, NS)] == ["reviews-v2-a"]
    other = route(cfg, headers={"end-user": "alice"})
    assert other is not None and other.subset == "v1"
    assert [e.workload.pod_name for e in cfg.endpoints(other, NS)] == ["reviews-v1-a"]


def test_weights_split_traffic() -> None:
    vs = istio(
        "VirtualService",
        "reviews",
        NS,
        {
            "hosts": ["reviews.bookinfo.svc.cluster.local"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 20},
                    ]
                }
            ],
        },
    )
    cfg = config_of([*bookinfo_objects(), vs])
    rng = random.Random(7)
    counts = Counter(route(cfg, rng=rng).subset for _ in range(1000))  # type: ignore[union-attr]
    assert set(counts) == {"v1", "v3"}
    assert 700 < counts["v1"] < 900


def test_uri_matches_timeout_retries_faults() -> None:
    vs = istio(
        "VirtualService",
        "ratings",
        NS,
        {
            "hosts": ["ratings"],
            "http": [
                {
                    "match": [{"uri": {"exact": "/exact"}}],
                    "route": [{"destination": {"host": "ratings"}}],
                    "timeout": "0.5s",
                },
                {
                    "match": [{"uri": {"regex": "/ratings/[0-9]+"}}],
                    "route": [{"destination": {"host": "ratings"}}],
                    "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                },
                {
                    "match": [{"uri": {"prefix": "/slow"}}],
                    "route": [{"destination": {"host": "ratings"}}],
                    "fault": {"delay": {"fixedDelay": "7s"}},
                    "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                },
            ],
        },
        api="networking.istio.io/v1alpha3",
    )
    cfg = config_of([*bookinfo_objects(), vs])
    exact = route(cfg, "/exact", host="ratings")
    assert exact is not None and exact.route is not None and exact.route.timeout == 0.5
    assert route(cfg, "/exact/no", host="ratings") is None  # a VirtualService exists: no match -> 404
    regex = route(cfg, "/ratings/0?x=1", host="ratings")
    assert regex is not None and regex.route is not None
    assert (regex.route.abort_status, regex.route.abort_percent) == (500, 100.0)
    assert route(cfg, "/ratings/abc", host="ratings") is None
    slow = route(cfg, "/slow/x", host="ratings")
    assert slow is not None and slow.route is not None
    assert (slow.route.delay_seconds, slow.route.delay_percent) == (7.0, 100.0)
    assert slow.route.retries.attempts == 3 and slow.route.retries.per_try_timeout == 2.0
    assert slow.route.retries.retries_status(502) and not slow.route.retries.retries_status(404)


def test_gateway_only_virtual_service_does_not_apply_to_sidecars() -> None:
    vs = istio(
        "VirtualService",
        "reviews-gw",
        NS,
        {
            "hosts": ["reviews"],
            "gateways": ["bookinfo-gateway"],
            "http": [{"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}],
        },
    )
    cfg = config_of([*bookinfo_objects(), vs])
    target = route(cfg)
    assert target is not None and target.subset == ""


@pytest.mark.parametrize(
    ("policies", "labels", "port", "expected"),
    [
        ([], {"app": "ratings"}, 9080, "PERMISSIVE"),
        ([("mesh", "istio-system", "STRICT", None, None)], {"app": "ratings"}, 9080, "STRICT"),
        (
            [("mesh", "istio-system", "STRICT", None, None), ("ns", NS, "PERMISSIVE", None, None)],
            {"app": "ratings"},
            9080,
            "PERMISSIVE",
        ),
        (
            [("mesh", "istio-system", "STRICT", None, None), ("ns", NS, "UNSET", None, None)],
            {"app": "ratings"},
            9080,
            "STRICT",
        ),
        (
            [("ns", NS, "STRICT", None, None), ("w", NS, "DISABLE", {"app": "ratings"}, None)],
            {"app": "ratings"},
            9080,
            "DISABLE",
        ),
        (
            [("ns", NS, "STRICT", None, None), ("w", NS, "DISABLE", {"app": "ratings"}, None)],
            {"app": "reviews"},
            9080,
            "STRICT",
        ),
        (
            [("ns", NS, "STRICT", None, None), ("w", NS, None, {"app": "ratings"}, {"9080": "PERMISSIVE"})],
            {"app": "ratings"},
            9080,
            "PERMISSIVE",
        ),
        (
            [("ns", NS, "STRICT", None, None), ("w", NS, None, {"app": "ratings"}, {"9080": "PERMISSIVE"})],
            {"app": "ratings"},
            9081,
            "STRICT",
        ),
        # port-level settings on a policy without a selector are ignored, as Istio does
        ([("ns", NS, "STRICT", None, {"9080": "DISABLE"})], {"app": "ratings"}, 9080, "STRICT"),
        # a mesh policy outside the root namespace is only a namespace policy
        ([("other", "default", "STRICT", None, None)], {"app": "ratings"}, 9080, "PERMISSIVE"),
    ],
)
def test_peer_authentication_precedence(
    policies: list[tuple[str, str, str | None, dict[str, str] | None, dict[str, str] | None]],
    labels: dict[str, str],
    port: int,
    expected: str,
) -> None:
    objects = [peer_auth(name, ns, mode, selector=sel, port_level=pl) for name, ns, mode, sel, pl in policies]
    cfg = config_of(objects)
    assert cfg.inbound_mtls_mode(NS, labels, port) == expected


def test_tls_origination_auto_mtls_and_destination_rule_modes() -> None:
    objects = bookinfo_objects()
    cfg = config_of(objects)
    target = route(cfg, host="ratings")
    assert target is not None
    endpoint = cfg.pick_endpoint(target, NS)
    assert endpoint is not None
    assert cfg.upstream_tls_mode(target, endpoint, NS) == "ISTIO_MUTUAL"
    legacy = cfg.resolve_host("legacy.legacy", NS)
    legacy_target = RouteTarget(service=legacy, port=9080)
    legacy_ep = cfg.pick_endpoint(legacy_target, NS)
    assert legacy_ep is not None
    assert cfg.upstream_tls_mode(legacy_target, legacy_ep, NS) == "DISABLE"
    # a DestinationRule's mode wins over auto mTLS; subset policy over the top-level one
    dr = istio(
        "DestinationRule",
        "ratings",
        NS,
        {
            "host": "ratings.bookinfo.svc.cluster.local",
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            "subsets": [
                {
                    "name": "v1",
                    "labels": {"version": "v1"},
                    "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                }
            ],
        },
    )
    cfg = config_of([*objects, dr])
    assert cfg.upstream_tls_mode(target, endpoint, NS) == "DISABLE"
    subset_target = RouteTarget(service=target.service, port=9080, subset="v1")
    assert cfg.upstream_tls_mode(subset_target, endpoint, NS) == "ISTIO_MUTUAL"
    # the destination's DISABLE PeerAuthentication turns auto mTLS off
    cfg = config_of([*objects, peer_auth("off", NS, "DISABLE", selector={"app": "ratings"})])
    assert cfg.upstream_tls_mode(target, endpoint, NS) == "DISABLE"
    # a mesh-wide rule in the root namespace applies to every host
    mesh_dr = istio(
        "DestinationRule",
        "default",
        "istio-system",
        {"host": "*.local", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    )
    cfg = config_of([*objects, mesh_dr])
    assert cfg.upstream_tls_mode(target, endpoint, NS) == "DISABLE"


def test_unknown_subset_has_no_endpoints() -> None:
    cfg = config_of(bookinfo_objects())
    svc = cfg.resolve_host("reviews", NS)
    assert cfg.endpoints(RouteTarget(service=svc, port=9080, subset="v9"), NS) == []


def gateway_objects(gateway_yaml: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(gateway_yaml) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = NS
    return [
        *bookinfo_objects(),
        pod(
            "istio-ingressgateway-a",
            "istio-system",
            "127.3.1.9",
            {"app": "istio-ingressgateway", "istio": "ingressgateway"},
            ports=(8080, 8443, 15021),
        ),
        service(
            "istio-ingressgateway",
            "istio-system",
            "127.3.200.9",
            {"app": "istio-ingressgateway", "istio": "ingressgateway"},
            ports=(("status-port", 15021, 15021), ("http2", 80, 8080), ("https", 443, 8443)),
        ),
        *docs,
    ]


def test_bookinfo_gateway_sample_routes_productpage() -> None:
    sample = (Path(__file__).parent / "data" / "bookinfo-gateway.yaml").read_text()
    cfg = config_of(gateway_objects(sample))
    gw_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    servers = cfg.gateway_servers("istio-system", gw_labels)
    assert [(s.gateway, s.listen_port, s.number) for s in servers] == [
        ("bookinfo/bookinfo-gateway", 8080, 80)
    ]
    assert gateway_host_allowed(servers[0].hosts, "192.0.2.1:80")
    for path in ("/productpage", "/static/x.css", "/api/v1/products/0"):
        target = cfg.route_http(
            RequestInfo(authority="127.3.250.1", path=path, port=8080),
            service=None,
            source_namespace="istio-system",
            source_labels=gw_labels,
            gateway="bookinfo/bookinfo-gateway",
        )
        assert target is not None and target.service is not None, path
        assert (target.service.name, target.port) == ("productpage", 9080)
    assert (
        cfg.route_http(
            RequestInfo(authority="x", path="/admin", port=8080),
            service=None,
            source_namespace="istio-system",
            source_labels=gw_labels,
            gateway="bookinfo/bookinfo-gateway",
        )
        is None
    )
    # newer samples name the container port directly
    cfg = config_of(gateway_objects(sample.replace("number: 80", "number: 8080")))
    assert [s.listen_port for s in cfg.gateway_servers("istio-system", gw_labels)] == [8080]


def test_resolve_host_forms_and_durations() -> None:
    cfg = config_of(bookinfo_objects())
    for name in (
        "ratings",
        "ratings.bookinfo",
        "ratings.bookinfo.svc",
        "ratings.bookinfo.svc.cluster.local",
        "127.3.200.3",
        "ratings:9080",
    ):
        svc = cfg.resolve_host(name, NS)
        assert svc is not None and svc.name == "ratings", name
    assert cfg.resolve_host("ratings", "other") is None
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m") == 60.0
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")
