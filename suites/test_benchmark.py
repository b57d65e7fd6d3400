"""Benchmark suite: what the mesh costs and how fast it reacts, saved and compared between runs.

One check measures, with a fixed load shape (``--meshcheck-load-users``/``--meshcheck-load-rps``,
``--meshcheck-benchmark-duration`` after a discarded ``--meshcheck-benchmark-warmup``; from this
machine or, with ``--meshcheck-load-in-cluster``, from Locust Jobs in the cluster): throughput
and p50/p90/p99 latency of /productpage through the ingress gateway and, as the reference, on a
copy of Bookinfo outside the mesh, giving the latency the mesh adds; observability lag (a new
client's first request until Prometheus has its series and Kiali its edge); and control-plane
convergence (a VirtualService applied until traffic follows it).

``--meshcheck-benchmark-save NAME`` stores the results under the reports dir;
``--meshcheck-benchmark-compare NAME`` fails on metrics worse than that baseline by more than
``--meshcheck-benchmark-tolerance`` percent (and their noise floor), with a before/after table and
plots. It is one check, not one per metric, so pytest-xdist can never split the measurements
across workers that would then load the cluster at the same time. Everything it creates is
benchmark-only (its own namespaces, a route for one signed-in user) and removed afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_meshcheck.benchmark import store
from pytest_meshcheck.benchmark.assemble import build_record, environment
from pytest_meshcheck.benchmark.bypass import NAMESPACE_PREFIX, in_cluster_url, install_bypass
from pytest_meshcheck.benchmark.compare import BenchmarkComparisonWarning, Comparison, compare
from pytest_meshcheck.benchmark.convergence import measure_convergence
from pytest_meshcheck.benchmark.lag import install_client, measure_lag
from pytest_meshcheck.benchmark.load_shapes import (
    describe_generator,
    generator_for,
    measure_target,
    shape_from_settings,
)
from pytest_meshcheck.benchmark.record import BenchmarkRecord
from pytest_meshcheck.benchmark.reporting import (
    attach_comparison,
    attach_results,
    attach_target,
    summary_section,
)
from pytest_meshcheck.checks.kiali import KialiClient
from pytest_meshcheck.checks.prometheus import PrometheusClient
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.addons import scrape_interval
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.install.istio import MeshInstall
from pytest_meshcheck.install.plan import mesh_from
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.load.start import gateway_service_url
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.report import attach_evidence, record_benchmark_result, reports_dir
from pytest_meshcheck.session import SESSION_PLUGIN_NAME, MeshcheckSession
from pytest_meshcheck.settings import Settings, parse_duration

pytestmark = pytest.mark.meshcheck_benchmark


def _reports_dir(settings: Settings) -> Path:
    return reports_dir() or settings.reports_dir.resolve()


@pytest.fixture(scope="session")
def benchmark_baseline(meshcheck_settings: Settings) -> BenchmarkRecord | None:
    """The baseline ``--meshcheck-benchmark-compare`` names, read before anything is provisioned
    or measured, so a mistyped name costs a second, not a benchmark run."""
    name = meshcheck_settings.benchmark_compare
    return store.load(_reports_dir(meshcheck_settings), name) if name else None


@pytest.fixture(scope="session")
def benchmark_mesh(pytestconfig: pytest.Config) -> MeshInstall:
    """The mesh being measured, from the run's record rather than ``meshcheck_mesh``: the
    upgrade gate runs before this suite, and the numbers (and the namespaces this suite labels
    for injection) belong to the version and revision it upgraded to."""
    session = pytestconfig.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    assert isinstance(session, MeshcheckSession), "the meshcheck fixtures imply its session"
    return mesh_from(session.layer("mesh"))


@pytest.fixture(scope="session")
def benchmark_environment(
    meshcheck_settings: Settings,
    meshcheck_cluster: ClusterHandle,
    meshcheck_kube: Kube,
    benchmark_mesh: MeshInstall,
) -> dict[str, str]:
    """What the numbers depend on besides the mesh, saved with them and compared."""
    return environment(
        cluster=meshcheck_settings.cluster,
        provider=meshcheck_cluster.provider,
        kubernetes_version=meshcheck_kube.server_version(),
        istio_version=benchmark_mesh.version,
        istio_revision=benchmark_mesh.revision,
        lab_faults=meshcheck_settings.lab_faults,
        load_generator=describe_generator(meshcheck_settings),
    )


def test_mesh_benchmark(  # noqa: PLR0917 (fixtures: pytest passes them by name)
    benchmark_baseline: BenchmarkRecord | None,
    benchmark_environment: dict[str, str],
    benchmark_mesh: MeshInstall,
    meshcheck_settings: Settings,
    meshcheck_kube: Kube,
    meshcheck_bookinfo: AppInstall,
    meshcheck_gateway_url: str,
    meshcheck_prometheus: PrometheusClient,
    meshcheck_kiali: KialiClient,
    meshcheck_namespace: Callable[..., str],
) -> None:
    """Measures gateway throughput and latency (p50/p90/p99), the latency the mesh adds over the
    same app outside it, observability lag in Prometheus and Kiali, and control-plane convergence;
    saves them with --meshcheck-benchmark-save and fails on regressions against
    --meshcheck-benchmark-compare beyond --meshcheck-benchmark-tolerance."""
    settings = meshcheck_settings
    kube = meshcheck_kube
    app_namespace = meshcheck_bookinfo.namespace

    client_namespace = meshcheck_namespace("meshcheck-bench-client", injected=True)
    install_client(kube, settings, client_namespace, injection_revision=benchmark_mesh.injection_revision)
    lag = measure_lag(
        kube,
        client_namespace=client_namespace,
        app_namespace=app_namespace,
        prometheus=meshcheck_prometheus,
        kiali=meshcheck_kiali,
        scrape_interval_s=parse_duration(scrape_interval(settings)),
        timeout=settings.timeout,
    )
    attach_evidence("benchmark: observability lag", lag.to_json(), "json")

    convergence = measure_convergence(
        kube, gateway_url=meshcheck_gateway_url, app_namespace=app_namespace, timeout=settings.timeout
    )
    attach_evidence("benchmark: control-plane convergence", convergence.to_json(), "json")

    bypass_namespace = meshcheck_namespace(NAMESPACE_PREFIX, labels={"istio-injection": "disabled"})
    bypass_url = install_bypass(kube, settings, bypass_namespace)
    gateway = measure_target(
        settings,
        meshcheck_gateway_url,
        label="gateway",
        generator=generator_for(settings, kube, gateway_service_url(kube)),
    )
    attach_target(gateway)
    bypass = measure_target(
        settings,
        bypass_url,
        label="bypass",
        generator=generator_for(settings, kube, in_cluster_url(bypass_namespace)),
    )
    attach_target(bypass)

    record = build_record(
        shape=shape_from_settings(settings),
        env=benchmark_environment,
        gateway=gateway,
        bypass=bypass,
        lag=lag,
        convergence=convergence,
    )
    attach_results(record)

    comparison: Comparison | None = None
    if benchmark_baseline is not None:
        comparison = compare(
            benchmark_baseline,
            record,
            tolerance_pct=settings.benchmark_tolerance,
            baseline_name=settings.benchmark_compare,
        )
        attach_comparison(comparison, record)
        for warning in comparison.warnings:
            warnings.warn(BenchmarkComparisonWarning(warning), stacklevel=1)

    saved_to = ""
    if settings.benchmark_save:
        saved_to = str(store.save(record, _reports_dir(settings), settings.benchmark_save))
    record_benchmark_result(
        summary_section(record, saved_as=settings.benchmark_save, saved_to=saved_to, comparison=comparison)
    )
    if comparison is not None and not comparison.ok:
        raise CheckFailed(comparison.failure_message())
