"""The plots are real images of the data: sized PNGs, with the colours that carry meaning."""

from __future__ import annotations

import io

import pytest

from pytest_meshcheck.errors import HarnessError
from pytest_meshcheck.report.plots import (
    ERROR_COLOUR,
    MTLS_COLOUR,
    PLAINTEXT_COLOUR,
    BarGroup,
    BeforeAfter,
    GraphEdge,
    LoadSample,
    LoadSeries,
    ServiceGraph,
    before_after_png,
    grouped_bars_png,
    latency_percentiles_png,
    layered_positions,
    service_graph_png,
    throughput_png,
)

SERIES = LoadSeries(
    title="Bookinfo under load",
    p95_budget_ms=250.0,
    samples=[
        LoadSample(elapsed_s=t, requests_per_s=40 + t, failures_per_s=0.5 if t == 5 else 0.0,
                   p50_ms=20 + t, p95_ms=80 + 2 * t, p99_ms=None if t == 0 else 120 + 3 * t)
        for t in range(0, 30, 5)
    ],
)

BOOKINFO = ServiceGraph(
    title="observed graph",
    nodes=["istio-ingressgateway", "productpage", "details", "reviews", "ratings"],
    edges=[
        GraphEdge(source="istio-ingressgateway", target="productpage", mtls=True, requests_per_s=10),
        GraphEdge(source="productpage", target="details", mtls=True),
        GraphEdge(source="productpage", target="reviews", mtls=False),
    ],
    missing=[GraphEdge(source="reviews", target="ratings", mtls=True)],
)


def _pixels(png: bytes) -> set[tuple[int, int, int]]:
    import numpy
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    rgb = numpy.rint(image[..., :3] * 255).astype(int).reshape(-1, 3)
    return {(int(r), int(g), int(b)) for r, g, b in numpy.unique(rgb, axis=0)}


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_latency_and_throughput_are_pngs_of_the_series() -> None:
    latency = latency_percentiles_png(SERIES)
    throughput = throughput_png(SERIES)
    assert _size(latency) == (800, 400)
    assert _size(throughput) == (800, 400)
    assert latency != throughput
    assert _rgb(PLAINTEXT_COLOUR) in _pixels(throughput)  # the failures line is drawn


def test_service_graph_marks_mtls_and_plaintext_edges() -> None:
    pixels = _pixels(service_graph_png(BOOKINFO))
    assert _rgb(MTLS_COLOUR) in pixels
    assert _rgb(PLAINTEXT_COLOUR) in pixels
    all_mtls = ServiceGraph(title="t", nodes=["a", "b"], edges=[GraphEdge(source="a", target="b", mtls=True)])
    assert _rgb(PLAINTEXT_COLOUR) not in _pixels(service_graph_png(all_mtls))


def test_layout_puts_callees_right_of_callers_and_survives_cycles() -> None:
    positions = layered_positions(BOOKINFO)
    assert positions["istio-ingressgateway"][0] == 0
    assert positions["productpage"][0] == 1
    assert positions["details"][0] == positions["reviews"][0] == 2
    assert positions["ratings"][0] == 3
    cycle = ServiceGraph(
        title="cycle", nodes=[], edges=[GraphEdge(source="a", target="b", mtls=True),
                                        GraphEdge(source="b", target="a", mtls=True)],
    )
    assert set(layered_positions(cycle)) == {"a", "b"}


def test_empty_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(HarnessError, match="no samples"):
        latency_percentiles_png(LoadSeries(title="x", samples=[]))
    with pytest.raises(HarnessError, match="no nodes"):
        service_graph_png(ServiceGraph(title="x", nodes=[], edges=[]))


def test_grouped_bars_put_the_groups_side_by_side() -> None:
    groups = [
        BarGroup(label="through the mesh", values={"p50": 40.0, "p90": 70.0, "p99": 120.0}),
        BarGroup(label="outside the mesh", values={"p50": 15.0, "p90": 25.0, "p99": 50.0}),
    ]
    png = grouped_bars_png("latency", groups, unit="ms")
    assert _size(png) == (800, 400)
    one = grouped_bars_png("latency", groups[:1], unit="ms")
    assert one != png


def test_before_after_marks_a_regressed_metric_red_and_gives_each_metric_its_own_panel() -> None:
    rows = [
        BeforeAfter(title="gateway p50", unit="ms", before=40.0, after=440.0, regressed=True),
        BeforeAfter(title="throughput", unit="req/s", before=80.0, after=11.0, better="higher"),
        BeforeAfter(title="Kiali lag", unit="s", before=11.0, after=None),
        BeforeAfter(title="convergence", unit="s", before=0.8, after=0.9),
        BeforeAfter(title="added p50", unit="ms", before=-2.0, after=3.0),
    ]
    png = before_after_png("baseline vs this run", rows)
    assert _size(png) == (1200, 540)  # 4 columns, 2 rows of panels
    assert _rgb(ERROR_COLOUR) in _pixels(png)
    calm = before_after_png("t", [BeforeAfter(title="p50", unit="ms", before=40.0, after=41.0)])
    assert _rgb(ERROR_COLOUR) not in _pixels(calm)
    with pytest.raises(HarnessError, match="no metrics"):
        before_after_png("t", [])
    with pytest.raises(HarnessError, match="no values"):
        grouped_bars_png("t", [], unit="ms")
