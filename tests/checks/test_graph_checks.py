"""The expected-graph file, comparing Kiali's graph with it, and watching the graph until it settles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_meshcheck.checks.graph import (
    STALE_AFTER_S,
    Staleness,
    compare,
    load_expected_graph,
    observe_graph,
)
from pytest_meshcheck.errors import ConfigError
from pytest_meshcheck.resources import data_file

NS = "bookinfo"


def node(node_id: str, app: str, version: str = "", namespace: str = NS, **extra: str) -> dict[str, Any]:
    data = {"id": node_id, "namespace": namespace, "app": app, **extra}
    if version:
        data["version"] = version
    return {"data": data}


def edge(
    source: str, target: str, *, rps: float = 1.0, rps_5xx: float = 0.0, mtls: float = 100
) -> dict[str, Any]:
    rates = {"http": f"{rps:g}"}
    if rps_5xx:
        rates["http5xx"] = f"{rps_5xx:g}"
    return {
        "data": {
            "id": f"{source}-{target}",
            "source": source,
            "target": target,
            "isMTLS": f"{mtls:g}",
            "traffic": {"protocol": "http", "rates": rates},
        }
    }


NODES = [
    node("gw", "istio-ingressgateway", namespace="istio-system"),
    node("pp", "productpage", "v1"),
    node("d", "details", "v1"),
    node("r1", "reviews", "v1"),
    node("r2", "reviews", "v2"),
    node("r3", "reviews", "v3"),
    node("ra", "ratings", "v1"),
    node("locust", "unknown", namespace="unknown", nodeType="unknown"),
]
HEALTHY_EDGES = [
    edge("gw", "pp"),
    edge("pp", "d"),
    edge("pp", "r1"),
    edge("pp", "r2"),
    edge("pp", "r3"),
    edge("r2", "ra"),
    edge("r3", "ra"),
]


def graph(edges: list[dict[str, Any]], nodes: list[dict[str, Any]] = NODES) -> dict[str, Any]:
    return {"elements": {"nodes": nodes, "edges": edges}}


def bookinfo() -> Any:
    return load_expected_graph(data_file("graphs", "bookinfo.yaml"), NS)


def test_the_shipped_bookinfo_graph_is_the_documented_one() -> None:
    expected = bookinfo()
    assert "bookinfo/productpage v1 -> bookinfo/details v1" in {str(e) for e in expected.edges}
    assert {str(e) for e in expected.absent} == {"bookinfo/reviews v1 -> bookinfo/ratings v1"}
    assert compare(expected, graph(HEALTHY_EDGES), max_5xx_share=0.01).ok


@pytest.mark.parametrize(
    ("edges", "kind", "named"),
    [
        (HEALTHY_EDGES[:-1], "missing", "bookinfo/reviews v3 -> bookinfo/ratings v1"),
        ([*HEALTHY_EDGES[:-1], edge("r3", "ra", rps=0)], "without traffic", "reviews v3 -> bookinfo/ratings"),
        ([*HEALTHY_EDGES, edge("r1", "ra")], "forbidden", "bookinfo/reviews v1 -> bookinfo/ratings v1"),
        ([*HEALTHY_EDGES, edge("d", "ra")], "unexpected", "bookinfo/details v1 -> bookinfo/ratings v1"),
        ([*HEALTHY_EDGES[1:], edge("gw", "pp", mtls=50)], "not fully mTLS", "isMTLS 50%"),
        ([*HEALTHY_EDGES[:-1], edge("r3", "ra", rps=2, rps_5xx=1)], "5xx above budget", "50.0%"),
    ],
    ids=["missing", "no-traffic", "forbidden", "unexpected", "plaintext", "5xx"],
)
def test_each_kind_of_difference_is_named(edges: list[dict[str, Any]], kind: str, named: str) -> None:
    diff = compare(bookinfo(), graph(edges), max_5xx_share=0.01)
    assert not diff.ok
    problems = {k: v for k, v in diff.as_dict().items() if v}
    assert list(problems) == [kind], problems
    assert any(named in item for item in problems[kind]), problems


def test_traffic_from_outside_the_app_is_not_judged() -> None:
    load_generator = edge("locust", "gw")
    assert compare(bookinfo(), graph([*HEALTHY_EDGES, load_generator]), max_5xx_share=0.01).ok


def test_a_bad_expected_graph_file_names_the_option(tmp_path: Path) -> None:
    bad = tmp_path / "graph.yaml"
    bad.write_text("edges:\n  - from: productpage\n")
    with pytest.raises(ConfigError, match=r"--meshcheck-expected-graph .*edges\[0\] needs 'from' and 'to'"):
        load_expected_graph(bad, NS)
    bad.write_text("edges: []\n")
    with pytest.raises(ConfigError, match="needs a non-empty 'edges' list"):
        load_expected_graph(bad, NS)
    with pytest.raises(ConfigError, match="--meshcheck-expected-graph"):
        load_expected_graph(tmp_path / "absent.yaml", NS)
    bad.write_text("edges:\n  - {from: productpage, to: [details]}\n")
    with pytest.raises(ConfigError, match=r"--meshcheck-expected-graph .*a node is 'app', 'app version'"):
        load_expected_graph(bad, NS)


class FakeKiali:
    """Serves one graph per poll (the last one forever) on a clock that polling advances."""

    def __init__(self, graphs: list[dict[str, Any]], *, frozen_at: int | None = None) -> None:
        self.graphs = graphs
        self.polls = 0
        self.now = 1_800_000_000.0
        self.frozen_at = frozen_at

    def graph(self, namespaces: Sequence[str]) -> dict[str, Any]:
        assert list(namespaces) == [NS]
        self.polls += 1
        stamp = self.frozen_at if self.frozen_at is not None else int(self.now)
        return {**self.graphs[min(self.polls, len(self.graphs)) - 1], "timestamp": stamp}

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def observe(kiali: FakeKiali, *, min_wait: float, patience: float, settle: float = 0.0) -> Any:
    return observe_graph(
        kiali,
        bookinfo(),
        NS,
        max_5xx_share=0.01,
        min_wait=min_wait,
        settle=settle,
        patience=patience,
        sleep=kiali.sleep,
        clock=lambda: kiali.now,
    )


def test_a_frozen_kiali_is_named_instead_of_waiting_out_the_patience() -> None:
    kiali = FakeKiali([graph(HEALTHY_EDGES[:2])], frozen_at=1_799_999_000)
    seen = observe(kiali, min_wait=0, patience=600)
    assert STALE_AFTER_S <= seen.waited_s < STALE_AFTER_S + 3
    findings = seen.findings("load")
    assert findings[0].startswith(f"Kiali's graph has not changed for {STALE_AFTER_S:.0f}s")
    assert "1799999000" in findings[0]
    assert findings[1].startswith("missing: ")


def test_a_graph_that_keeps_its_stamp_but_is_complete_is_not_called_frozen() -> None:
    kiali = FakeKiali([graph(HEALTHY_EDGES)], frozen_at=1_799_999_000)
    assert observe(kiali, min_wait=5, patience=600).findings("load") == []


def test_staleness_needs_the_same_stamp_for_the_whole_period() -> None:
    staleness = Staleness()
    for second in range(0, 60, 2):
        staleness.see({"timestamp": 1000 + second}, float(second))
        assert not staleness.stale
    staleness.see({"timestamp": 1058}, 60.0 + STALE_AFTER_S)
    assert staleness.stale
    staleness.see({}, 200.0)  # a graph without a stamp changes nothing
    assert staleness.stale


def test_a_complete_graph_is_not_judged_before_the_minimum_wait() -> None:
    kiali = FakeKiali([graph(HEALTHY_EDGES)])
    seen = observe(kiali, min_wait=10, patience=60)
    assert seen.waited_s >= 10
    assert seen.findings("load") == []


def test_edges_that_arrive_late_are_waited_for() -> None:
    kiali = FakeKiali([graph([]), graph(HEALTHY_EDGES[:3]), graph(HEALTHY_EDGES)])
    seen = observe(kiali, min_wait=0, patience=60)
    assert kiali.polls == 3
    assert seen.diff.ok


def test_a_complete_graph_with_a_wrong_edge_fails_at_once() -> None:
    kiali = FakeKiali([graph([*HEALTHY_EDGES, edge("r1", "ra")])])
    seen = observe(kiali, min_wait=0, patience=60)
    assert kiali.polls == 1
    assert seen.findings("load") == ["forbidden: bookinfo/reviews v1 -> bookinfo/ratings v1"]


def test_an_edge_whose_destination_has_not_vouched_for_mtls_yet_is_given_the_settle_time() -> None:
    """After a restart the source's report brings the edge before the destination's brings its
    mTLS share (isMTLS then reads 0): that is telemetry on its way, not plaintext."""
    unvouched = [*HEALTHY_EDGES[:-1], edge("r3", "ra", mtls=0)]
    kiali = FakeKiali([graph(unvouched), graph(unvouched), graph(HEALTHY_EDGES)])
    seen = observe(kiali, min_wait=0, settle=10, patience=60)
    assert kiali.polls == 3
    assert seen.findings("load") == []


def test_a_plaintext_edge_fails_once_the_settle_time_is_over_not_at_the_patience() -> None:
    kiali = FakeKiali([graph([*HEALTHY_EDGES[:-1], edge("r3", "ra", mtls=0)])])
    seen = observe(kiali, min_wait=4, settle=10, patience=120)
    assert 14 <= seen.waited_s < 17
    assert seen.findings("load") == ["not fully mTLS: bookinfo/reviews v3 -> bookinfo/ratings v1: isMTLS 0%"]


def test_no_edges_at_all_is_reported_as_missing_telemetry_after_the_patience() -> None:
    kiali = FakeKiali([graph([])])
    seen = observe(kiali, min_wait=5, patience=30)
    assert 30 <= seen.waited_s < 32
    assert seen.findings("load through the gateway") == [
        "no traffic seen in Kiali after 30s of load through the gateway"
    ]


def test_an_edge_that_never_comes_is_named_after_the_patience() -> None:
    kiali = FakeKiali([graph(HEALTHY_EDGES[:-1])])
    seen = observe(kiali, min_wait=0, patience=20)
    assert seen.waited_s >= 20
    assert seen.findings("load") == ["missing: bookinfo/reviews v3 -> bookinfo/ratings v1"]
