"""The service graph Kiali shows, compared with the graph an application is expected to have.

The expected graph is data (``fixtures/graphs/bookinfo.yaml`` or ``--meshcheck-expected-graph``),
so another repository declares its own app's edges instead of writing code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from pytest_meshcheck.errors import ConfigError


@dataclass(frozen=True, order=True)
class NodeRef:
    """An app (optionally one version) in a namespace."""

    namespace: str
    app: str
    version: str = ""

    def __str__(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"{self.namespace}/{self.app}{version}"

    def matches(self, node: Mapping[str, Any]) -> bool:
        app = node.get("app") or node.get("workload") or node.get("service") or ""
        if node.get("namespace") != self.namespace or app != self.app:
            return False
        return not self.version or node.get("version") == self.version


@dataclass(frozen=True, order=True)
class EdgeRef:
    source: NodeRef
    target: NodeRef

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class ExpectedGraph:
    edges: tuple[EdgeRef, ...]
    absent: tuple[EdgeRef, ...]

    @property
    def namespaces(self) -> list[str]:
        return sorted({n.namespace for e in self.edges for n in (e.source, e.target)})


def _node(raw: Any, namespace: str, where: str) -> NodeRef:
    if isinstance(raw, str):
        app, _, version = raw.strip().partition(" ")
        return NodeRef(namespace=namespace, app=app, version=version.strip())
    if isinstance(raw, dict) and raw.get("app"):
        return NodeRef(
            namespace=str(raw.get("namespace") or namespace),
            app=str(raw["app"]),
            version=str(raw.get("version") or ""),
        )
    raise ConfigError(
        f"--meshcheck-expected-graph {where}: a node is 'app', 'app version' or "
        f"{{app, version, namespace}}, not {raw!r}",
        option="--meshcheck-expected-graph",
        value=repr(raw),
        accepted="'app', 'app version' or {app, version, namespace}",
    )


def load_expected_graph(path: Path, namespace: str) -> ExpectedGraph:
    """Parse an expected-graph file; node namespaces default to ``namespace``."""
    option = "--meshcheck-expected-graph"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc}", option=option, value=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{option} {path} is not valid YAML: {exc}", option=option, value=str(path)
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("edges"), list) or not data["edges"]:
        raise ConfigError(f"{option} {path} needs a non-empty 'edges' list", option=option, value=str(path))

    def edges(key: str) -> tuple[EdgeRef, ...]:
        result = []
        for index, raw in enumerate(data.get(key) or []):
            where = f"{path}: {key}[{index}]"
            if not isinstance(raw, dict) or "from" not in raw or "to" not in raw:
                raise ConfigError(f"{option} {where} needs 'from' and 'to'", option=option, value=str(path))
            result.append(EdgeRef(_node(raw["from"], namespace, where), _node(raw["to"], namespace, where)))
        return tuple(result)

    return ExpectedGraph(edges=edges("edges"), absent=edges("absent"))


@dataclass(frozen=True, kw_only=True)
class SeenEdge:
    source: Mapping[str, Any]
    target: Mapping[str, Any]
    data: Mapping[str, Any]

    @property
    def http_rate(self) -> float:
        rates = (self.data.get("traffic") or {}).get("rates") or {}
        return _number(rates.get("http") or rates.get("tcp"))

    @property
    def error_5xx_rate(self) -> float:
        rates = (self.data.get("traffic") or {}).get("rates") or {}
        return _number(rates.get("http5xx"))

    @property
    def mtls_percent(self) -> float:
        return _number(self.data.get("isMTLS"))

    @property
    def source_name(self) -> str:
        return _label(self.source)

    @property
    def target_name(self) -> str:
        return _label(self.target)

    def name(self) -> str:
        return f"{self.source_name} -> {self.target_name}"


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _label(node: Mapping[str, Any]) -> str:
    app = node.get("app") or node.get("workload") or node.get("service") or node.get("id", "?")
    version = f" {node['version']}" if node.get("version") else ""
    return f"{node.get('namespace', '')}/{app}{version}"


def seen_edges(graph: Mapping[str, Any]) -> list[SeenEdge]:
    elements = graph.get("elements") or {}
    nodes = {str(n["data"]["id"]): n["data"] for n in elements.get("nodes") or [] if "data" in n}
    edges = []
    for edge in elements.get("edges") or []:
        data = edge.get("data") or {}
        source, target = nodes.get(str(data.get("source"))), nodes.get(str(data.get("target")))
        if source is not None and target is not None:
            edges.append(SeenEdge(source=source, target=target, data=data))
    return edges


@dataclass(frozen=True, kw_only=True)
class GraphDiff:
    missing: tuple[EdgeRef, ...]
    without_traffic: tuple[EdgeRef, ...]
    forbidden: tuple[str, ...]
    unexpected: tuple[str, ...]
    not_mtls: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.without_traffic
            or self.forbidden
            or self.unexpected
            or self.not_mtls
            or self.errors
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "missing": [str(e) for e in self.missing],
            "without traffic": [str(e) for e in self.without_traffic],
            "forbidden": list(self.forbidden),
            "unexpected": list(self.unexpected),
            "not fully mTLS": list(self.not_mtls),
            "5xx above budget": list(self.errors),
        }


def _find(edge: EdgeRef, seen: Iterable[SeenEdge]) -> list[SeenEdge]:
    return [s for s in seen if edge.source.matches(s.source) and edge.target.matches(s.target)]


def compare(expected: ExpectedGraph, graph: Mapping[str, Any], *, max_5xx_share: float) -> GraphDiff:
    """What differs between Kiali's graph and the expected one.

    An edge is "unexpected" when both its ends are in the expected namespaces but no expected
    edge accounts for it (edges from outside clients, such as the load generator, are not judged).
    """
    seen = seen_edges(graph)
    missing, without_traffic, not_mtls, errors = [], [], [], []
    accounted: set[int] = set()
    for edge in expected.edges:
        found = _find(edge, seen)
        accounted.update(id(s) for s in found)
        if not found:
            missing.append(edge)
            continue
        if not any(s.http_rate > 0 for s in found):
            without_traffic.append(edge)
        for s in found:
            if s.mtls_percent < 100:
                not_mtls.append(f"{s.name()}: isMTLS {s.mtls_percent:g}%")
            if s.http_rate > 0 and s.error_5xx_rate / s.http_rate > max_5xx_share:
                errors.append(f"{s.name()}: {s.error_5xx_rate / s.http_rate:.1%} of requests answered 5xx")
    forbidden = [s.name() for edge in expected.absent for s in _find(edge, seen)]
    accounted.update(id(s) for edge in expected.absent for s in _find(edge, seen))
    namespaces = set(expected.namespaces)
    unexpected = [
        s.name()
        for s in seen
        if id(s) not in accounted
        and s.source.get("namespace") in namespaces
        and s.target.get("namespace") in namespaces
        and s.source.get("nodeType") != "unknown"
    ]
    return GraphDiff(
        missing=tuple(missing),
        without_traffic=tuple(without_traffic),
        forbidden=tuple(forbidden),
        unexpected=tuple(unexpected),
        not_mtls=tuple(not_mtls),
        errors=tuple(errors),
    )


#: A graph whose timestamp has not moved for this long, while it was being asked for again and
#: again, is a frozen one: Kiali stamps every graph with the time it was computed for.
STALE_AFTER_S = 30.0


class Staleness:
    """Watches the ``timestamp`` of successive graphs: a Kiali that stopped updating keeps serving
    the same moment, and no amount of waiting changes what it shows."""

    def __init__(self) -> None:
        self.stamp: int | None = None
        self._since: float = 0.0
        self.stale_s: float = 0.0

    def see(self, graph: Mapping[str, Any], now: float) -> None:
        try:
            stamp = int(graph["timestamp"])
        except (KeyError, TypeError, ValueError):
            return  # a graph without a timestamp cannot tell
        if stamp != self.stamp:
            self.stamp, self._since, self.stale_s = stamp, now, 0.0
        else:
            self.stale_s = now - self._since

    @property
    def stale(self) -> bool:
        return self.stale_s >= STALE_AFTER_S

    def finding(self) -> str:
        return (
            f"Kiali's graph has not changed for {self.stale_s:.0f}s (its timestamp stays at "
            f"{self.stamp}): Kiali is serving a frozen graph"
        )


class GraphSource(Protocol):
    """Where graphs come from: Kiali's ``/api/namespaces/graph`` (``checks/kiali.KialiClient``)."""

    def graph(self, namespaces: Sequence[str]) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class GraphObservation:
    """The last graph Kiali showed, how it compares, and how long it was watched."""

    graph: dict[str, Any]
    diff: GraphDiff
    waited_s: float
    #: The frozen-graph finding when Kiali stopped updating during the watch, else "".
    stale: str = ""

    def findings(self, what: str) -> list[str]:
        """One line per problem; a graph without any edge is "no traffic", not a list of every
        expected edge as missing, because then telemetry is what is broken, not the app. A frozen
        graph is said first: what it lacks is then Kiali's fault, not the mesh's."""
        first = [self.stale] if self.stale else []
        if not seen_edges(self.graph):
            return [*first, f"no traffic seen in Kiali after {self.waited_s:.0f}s of {what}"]
        diff = [f"{kind}: {', '.join(items)}" for kind, items in self.diff.as_dict().items() if items]
        return [*first, *diff] if diff else []


def observe_graph(
    kiali: GraphSource,
    expected: ExpectedGraph,
    namespace: str,
    *,
    max_5xx_share: float,
    min_wait: float,
    settle: float,
    patience: float,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> GraphObservation:
    """Watch Kiali's graph of ``namespace`` while traffic flows, until it matches ``expected``,
    or differs from it for ``settle`` seconds once every expected edge carries traffic, or
    ``patience`` runs out; the last graph is the one judged.

    Telemetry trails traffic by a scrape interval or two, so nothing is judged before ``min_wait``
    (an edge whose rate is still zero would otherwise pass as "present"). An edge's traffic comes
    from its source's report and its mTLS share from its destination's, scraped separately, so a
    new edge can carry traffic for a scrape before its destination vouches for mTLS (say, after a
    rolling restart): a complete graph that still differs is watched for ``settle`` seconds more
    before it is judged, no longer, so that a real regression (a plaintext hop, 5xx, a forbidden
    edge) fails promptly. The watch also stops when Kiali serves the same moment for
    ``STALE_AFTER_S`` (a frozen graph never completes).
    """
    started = clock()
    staleness = Staleness()
    complete_since: float | None = None
    while True:
        graph = kiali.graph([namespace])
        diff = compare(expected, graph, max_5xx_share=max_5xx_share)
        now = clock()
        waited = now - started
        staleness.see(graph, now)
        complete = not diff.missing and not diff.without_traffic and waited >= min_wait
        if not complete:
            complete_since = None
        elif complete_since is None:
            complete_since = now
        settled = complete_since is not None and (diff.ok or now - complete_since >= settle)
        if settled or waited >= patience or staleness.stale:
            stale = staleness.finding() if staleness.stale and not diff.ok else ""
            return GraphObservation(graph=graph, diff=diff, waited_s=waited, stale=stale)
        sleep(min(poll_s, max(patience - waited, 0.0)))
