"""Kiali graph suite.

While Locust drives load through the gateway, Kiali's versionedApp graph of the application
namespace must contain exactly the expected edges (``--meshcheck-expected-graph``; Bookinfo's by
default), each with traffic, 5xx within ``--meshcheck-max-error-rate`` and full mTLS. It waits at
least two Prometheus scrape intervals, and says "no traffic seen in Kiali" when telemetry is
missing rather than reporting an empty diff.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_meshcheck.checks.graph import ExpectedGraph, load_expected_graph, observe_graph, seen_edges
from pytest_meshcheck.checks.kiali import KialiClient
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.addons import scrape_interval
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.load import load_run
from pytest_meshcheck.report import attach_evidence
from pytest_meshcheck.report.plots import GraphEdge, ServiceGraph, service_graph_png
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import Settings, parse_duration

pytestmark = pytest.mark.meshcheck_graph


def _drawing(graph: dict[str, Any], expected: ExpectedGraph, missing: list[str]) -> bytes:
    edges = seen_edges(graph)
    names = sorted({e.source_name for e in edges} | {e.target_name for e in edges})
    return service_graph_png(
        ServiceGraph(
            title="Kiali graph (versionedApp)",
            nodes=names,
            edges=[
                GraphEdge(
                    source=e.source_name,
                    target=e.target_name,
                    mtls=e.mtls_percent >= 100,
                    requests_per_s=e.http_rate,
                )
                for e in edges
            ],
            missing=[
                GraphEdge(source=str(m.source), target=str(m.target), mtls=True)
                for m in expected.edges
                if str(m) in missing
            ],
        )
    )


def test_kiali_graph_has_exactly_the_expected_edges(
    meshcheck_gateway_url: str,
    meshcheck_bookinfo: AppInstall,
    meshcheck_kiali: KialiClient,
    meshcheck_settings: Settings,
    meshcheck_kube: Kube,
) -> None:
    path = meshcheck_settings.expected_graph or data_file("graphs", "bookinfo.yaml")
    expected = load_expected_graph(path, meshcheck_bookinfo.namespace)
    min_wait = 2 * parse_duration(scrape_interval(meshcheck_settings))
    patience = max(min_wait, min(meshcheck_settings.timeout, 120))
    run = load_run(
        meshcheck_settings,
        meshcheck_gateway_url,
        kube=meshcheck_kube,
        run_name="graph",
        duration_s=patience + 30,
    )
    with run:
        seen = observe_graph(
            meshcheck_kiali,
            expected,
            meshcheck_bookinfo.namespace,
            max_5xx_share=meshcheck_settings.max_error_rate,
            min_wait=min_wait,
            settle=min_wait,  # the destinations' reports (mTLS) may trail the sources' by a scrape
            patience=patience,
        )
        run.stop()
    attach_evidence("Kiali graph JSON", seen.graph, "json")
    attach_evidence("expected vs seen edges", seen.diff.as_dict(), "json")
    missing = [str(e) for e in seen.diff.missing]
    attach_evidence("service graph", _drawing(seen.graph, expected, missing), "png")
    problems = seen.findings("load through the gateway")
    if not seen_edges(seen.graph):
        raise CheckFailed(problems[0])
    if problems:
        raise CheckFailed(
            f"Kiali's graph after {seen.waited_s:.0f}s differs from {path.name}:\n" + "\n".join(problems)
        )
