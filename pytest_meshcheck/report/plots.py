"""PNG plots for evidence: latency percentiles, RPS and errors over time, the service graph, and
the benchmark's bar charts (mesh vs bypass percentiles, before/after per metric).

The inputs are small typed values that the load and graph layers fill from what they measured,
so this module knows nothing about Locust's CSV columns or Kiali's JSON. matplotlib is imported
inside the functions (it is slow to import and most pytest runs never draw), and only through its
object API with the Agg canvas, so drawing never touches a display or pyplot's global state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.errors import HarnessError

MTLS_COLOUR = "#2e7d32"
PLAINTEXT_COLOUR = "#c62828"
ERROR_COLOUR = "#c62828"
NODE_COLOUR = "#e3f2fd"


@dataclass(frozen=True, kw_only=True)
class LoadSample:
    """One interval of a load run. Percentiles are None when no request finished in it."""

    elapsed_s: float
    requests_per_s: float
    failures_per_s: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class LoadSeries:
    title: str
    samples: Sequence[LoadSample]
    #: The latency budget (``--meshcheck-p95-ms``), drawn as a line when given.
    p95_budget_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class GraphEdge:
    source: str
    target: str
    mtls: bool
    requests_per_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceGraph:
    title: str
    nodes: Sequence[str]
    edges: Sequence[GraphEdge]
    #: Edges expected but not seen, drawn dotted so a missing edge is visible, not just absent.
    missing: Sequence[GraphEdge] = field(default_factory=tuple)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _require_samples(series: LoadSeries) -> list[LoadSample]:
    samples = sorted(series.samples, key=lambda sample: sample.elapsed_s)
    if not samples:
        raise HarnessError(f"cannot plot {series.title!r}: the load series has no samples")
    return samples


def latency_percentiles_png(series: LoadSeries) -> bytes:
    """p50/p95/p99 latency over time, with the p95 budget when one is set."""
    samples = _require_samples(series)
    figure = _figure(8, 4)
    axes = figure.add_subplot()
    times = [sample.elapsed_s for sample in samples]
    lines = (("p50", "p50_ms", "-"), ("p95", "p95_ms", "-"), ("p99", "p99_ms", "--"))
    for label, attribute, style in lines:
        values = [getattr(sample, attribute) for sample in samples]
        axes.plot(times, [math.nan if v is None else v for v in values], style, marker=".", label=label)
    if series.p95_budget_ms is not None:
        axes.axhline(series.p95_budget_ms, color=ERROR_COLOUR, linestyle=":", label="p95 budget")
    axes.set_title(series.title)
    axes.set_xlabel("elapsed (s)")
    axes.set_ylabel("latency (ms)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    return _png(figure)


def throughput_png(series: LoadSeries) -> bytes:
    """Requests per second and failures per second over time, on one time axis."""
    samples = _require_samples(series)
    figure = _figure(8, 4)
    axes = figure.add_subplot()
    times = [sample.elapsed_s for sample in samples]
    axes.plot(times, [s.requests_per_s for s in samples], marker=".", label="requests/s")
    axes.plot(
        times, [s.failures_per_s for s in samples], marker=".", color=ERROR_COLOUR, label="failures/s"
    )
    axes.set_title(series.title)
    axes.set_xlabel("elapsed (s)")
    axes.set_ylabel("per second")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    return _png(figure)


def layered_positions(graph: ServiceGraph) -> dict[str, tuple[float, float]]:
    """Left-to-right layers: a node sits one column right of its furthest caller.

    Callers form a DAG in Bookinfo-like meshes; a cycle is broken by placing the node where it
    was first reached, so every graph gets a layout.
    """
    all_edges = [*graph.edges, *graph.missing]
    endpoints = [name for edge in all_edges for name in (edge.source, edge.target)]
    nodes = list(dict.fromkeys([*graph.nodes, *endpoints]))
    callers: dict[str, set[str]] = {node: set() for node in nodes}
    for edge in all_edges:
        callers[edge.target].add(edge.source)
    layer: dict[str, int] = {}

    def depth(node: str, visiting: frozenset[str]) -> int:
        if node in layer:
            return layer[node]
        parents = [p for p in callers[node] if p not in visiting and p != node]
        value = 0 if not parents else 1 + max(depth(p, visiting | {node}) for p in parents)
        layer[node] = value
        return value

    for node in nodes:
        depth(node, frozenset())
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(layer[node], []).append(node)
    positions: dict[str, tuple[float, float]] = {}
    for column, members in columns.items():
        for row, node in enumerate(sorted(members)):
            positions[node] = (float(column), (len(members) - 1) / 2.0 - row)
    return positions


def service_graph_png(graph: ServiceGraph) -> bytes:
    """Nodes and call edges; mTLS edges solid green with a lock label, plaintext dashed red."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    positions = layered_positions(graph)
    if not positions:
        raise HarnessError(f"cannot draw {graph.title!r}: the graph has no nodes")
    columns = max(x for x, _ in positions.values()) + 1
    rows = max(sum(1 for x2, _ in positions.values() if x2 == x) for x, _ in positions.values())
    figure = _figure(max(6.0, 2.6 * columns), max(3.5, 1.3 * rows + 1.5))
    axes = figure.add_subplot()
    axes.set_axis_off()
    for edge, style in [(e, "seen") for e in graph.edges] + [(e, "missing") for e in graph.missing]:
        start, end = positions[edge.source], positions[edge.target]
        colour = MTLS_COLOUR if edge.mtls else PLAINTEXT_COLOUR
        linestyle = ":" if style == "missing" else ("-" if edge.mtls else "--")
        arrow = FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=14,
            color=colour if style == "seen" else "#757575",
            linestyle=linestyle,
            linewidth=2.0,
            shrinkA=28,
            shrinkB=28,
            connectionstyle="arc3,rad=0.08",
        )
        axes.add_patch(arrow)
        label = "mTLS" if edge.mtls else "plaintext"
        if style == "missing":
            label = "missing"
        elif edge.requests_per_s is not None:
            label += f" {edge.requests_per_s:.3g} rps"
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08)
        axes.text(*mid, label, fontsize=7, ha="center", color=colour if style == "seen" else "#757575")
    for node, (x, y) in positions.items():
        box = {"boxstyle": "round,pad=0.4", "facecolor": NODE_COLOUR, "edgecolor": "#1565c0"}
        axes.text(x, y, node, ha="center", va="center", fontsize=9, bbox=box)
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    axes.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    axes.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    axes.set_title(graph.title)
    legend = []
    if any(edge.mtls for edge in graph.edges):
        legend.append(Line2D([], [], color=MTLS_COLOUR, linewidth=2, label="mTLS"))
    if any(not edge.mtls for edge in graph.edges):
        legend.append(Line2D([], [], color=PLAINTEXT_COLOUR, linewidth=2, linestyle="--", label="plaintext"))
    if graph.missing:
        legend.append(Line2D([], [], color="#757575", linewidth=2, linestyle=":", label="expected, not seen"))
    if legend:
        axes.legend(handles=legend, loc="lower right", fontsize=8)
    return _png(figure)


@dataclass(frozen=True, kw_only=True)
class BarGroup:
    """One series of a grouped bar chart: a label (e.g. "through the mesh") and its values by
    category (e.g. {"p50": 12.0, "p90": 20.0})."""

    label: str
    values: Mapping[str, float]


def grouped_bars_png(title: str, groups: Sequence[BarGroup], *, unit: str) -> bytes:
    """Side-by-side bars per category, one colour per group, values written on the bars."""
    categories = list(dict.fromkeys(name for group in groups for name in group.values))
    if not categories:
        raise HarnessError(f"cannot plot {title!r}: no values")
    figure = _figure(8, 4)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(groups))
    for index, group in enumerate(groups):
        xs = [position + (index - (len(groups) - 1) / 2) * width for position in range(len(categories))]
        heights = [group.values.get(name, math.nan) for name in categories]
        bars = axes.bar(xs, heights, width=width, label=group.label)
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
    axes.set_xticks(range(len(categories)), categories)
    axes.set_title(title)
    axes.set_ylabel(unit)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper left")
    return _png(figure)


@dataclass(frozen=True, kw_only=True)
class BeforeAfter:
    """One metric of a comparison; ``regressed`` colours its "after" bar red."""

    title: str
    unit: str
    before: float | None
    after: float | None
    regressed: bool = False
    better: str = "lower"


def before_after_png(title: str, rows: Sequence[BeforeAfter], *, columns: int = 4) -> bytes:
    """One small panel per metric with its baseline and current value, each on its own scale (a
    throughput of hundreds and a lag of seconds cannot share an axis)."""
    if not rows:
        raise HarnessError(f"cannot plot {title!r}: no metrics")
    columns = max(1, min(columns, len(rows)))
    lines = math.ceil(len(rows) / columns)
    figure = _figure(3.0 * columns, 2.4 * lines + 0.6)
    figure.suptitle(title)
    for index, row in enumerate(rows):
        axes = figure.add_subplot(lines, columns, index + 1)
        values = [math.nan if value is None else value for value in (row.before, row.after)]
        colours = ["#90a4ae", ERROR_COLOUR if row.regressed else "#1565c0"]
        bars = axes.bar(["before", "after"], values, color=colours)
        axes.bar_label(bars, fmt="%.3g", fontsize=7)
        axes.margins(y=0.15)
        axes.set_title(f"{row.title}\n({row.better} is better)", fontsize=8)
        axes.set_ylabel(row.unit, fontsize=7)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3, axis="y")
    return _png(figure)
