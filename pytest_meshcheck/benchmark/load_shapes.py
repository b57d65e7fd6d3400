"""Measuring one target (the gateway, or the bypass copy) with the benchmark's fixed load shape.

Each target gets a warm-up run that is thrown away (connection pools, caches and JITs settle;
users ramp up at ``--meshcheck-load-spawn-rate``), then a separate measured run that starts all
its users at once, so no ramp is averaged into the figures. Both use the shipped ``http_get.py``
locustfile on ``/productpage`` only, so the mesh and the bypass serve exactly the same request.

The load comes from this machine, or with ``--meshcheck-load-in-cluster`` from Locust Jobs in the
cluster aimed at each target's Service (the gateway's, the bypass copy's), as the load suite does.

Locust is closed-loop unless ``--meshcheck-load-rps`` is set: its throughput then depends on the
latency it measures, and the record says which mode ran. A generating process near 100% of a
core is reported as saturated: its figures are the generator's limit, not the mesh's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pytest_meshcheck.benchmark.metrics import MetricValue, locust_resolution_ms
from pytest_meshcheck.benchmark.record import GeneratorNote, LoadShape
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.images import rewrite_image
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.load import LoadResult, LoadRun, LoadSpec, spec_from_settings
from pytest_meshcheck.load.incluster import InClusterLoadRun
from pytest_meshcheck.load.manifests import locust_image
from pytest_meshcheck.load.spec import ENV_URLS, shipped_locustfile
from pytest_meshcheck.load.start import locust_version
from pytest_meshcheck.settings import Settings

BENCHMARK_PATH = "/productpage"


def shape_from_settings(settings: Settings) -> LoadShape:
    return LoadShape(
        mode="closed-loop" if settings.load_rps is None else "constant-rate",
        users=settings.load_users,
        spawn_rate=settings.load_spawn_rate,
        workers=settings.load_workers,
        target_rps=settings.load_rps,
        duration_s=settings.benchmark_duration,
        warmup_s=settings.benchmark_warmup,
        request=f"GET {BENCHMARK_PATH}",
    )


def _spec(settings: Settings, url: str, run_name: str, *, duration_s: float, host_header: str) -> LoadSpec:
    spec = spec_from_settings(
        settings,
        url,
        host_header=host_header,
        run_name=run_name,
        duration_s=duration_s,
        env={ENV_URLS: BENCHMARK_PATH},
    )
    return replace(spec, locustfile=shipped_locustfile("http_get.py").resolve())


@dataclass(frozen=True, kw_only=True)
class Generator:
    """Where the load comes from: this machine (no ``in_cluster_kube``), or Locust Jobs in the
    cluster (``--meshcheck-load-in-cluster``) aimed at ``in_cluster_url``, the target's Service as
    pods reach it, so both targets are measured from the same place either way."""

    in_cluster_kube: Kube | None = None
    in_cluster_url: str = ""
    image: str = ""

    def run(self, spec: LoadSpec) -> LoadResult:
        handle: LoadRun | InClusterLoadRun
        if self.in_cluster_kube is None:
            handle = LoadRun(spec)
        else:
            handle = InClusterLoadRun(
                spec, kube=self.in_cluster_kube, image=self.image, target_url=self.in_cluster_url
            )
        with handle:
            handle.wait(timeout=handle.default_timeout())
        return handle.result()


def generator_for(settings: Settings, kube: Kube, in_cluster_url: str) -> Generator:
    """The generator the options ask for (``in_cluster_url`` is used only in the cluster)."""
    if not settings.load_in_cluster:
        return Generator()
    image = rewrite_image(locust_image(locust_version()), settings.image_registry)
    return Generator(in_cluster_kube=kube, in_cluster_url=in_cluster_url, image=image)


def describe_generator(settings: Settings) -> str:
    if settings.load_in_cluster:
        return "Locust as Jobs in the cluster (--meshcheck-load-in-cluster)"
    return "Locust on the machine running pytest"


def _latency(value_ms: float) -> MetricValue:
    return MetricValue(value=float(value_ms), resolution=locust_resolution_ms(float(value_ms)))


@dataclass(frozen=True, kw_only=True)
class TargetMeasurement:
    """What the measured (not the warm-up) run of one target gave."""

    label: str
    result: LoadResult

    def metrics(self, prefix: str) -> dict[str, MetricValue]:
        latency = self.result.latency
        return {
            f"{prefix}_rps": MetricValue(value=round(self.result.rps, 2)),
            f"{prefix}_p50_ms": _latency(latency.p50_ms),
            f"{prefix}_p90_ms": _latency(latency.p90_ms),
            f"{prefix}_p99_ms": _latency(latency.p99_ms),
        }

    def generator(self) -> GeneratorNote:
        shares = [p.busy for p in self.result.generators if p.busy is not None]
        return GeneratorNote(
            saturated=self.result.generator_saturated,
            busiest_share=max(shares) if shares else None,
            requests=self.result.requests,
            failures=self.result.failures,
        )


def measure_target(
    settings: Settings,
    url: str,
    *,
    label: str,
    host_header: str = "",
    generator: Generator | None = None,
) -> TargetMeasurement:
    """Warm ``url`` up, then measure it; ``CheckFailed`` when the measured run's errors exceed
    ``--meshcheck-max-error-rate`` (fast failures would pass for good latency)."""
    source = generator or Generator()
    warmup = _spec(
        settings,
        url,
        f"benchmark-{label}-warmup",
        duration_s=settings.benchmark_warmup,
        host_header=host_header,
    )
    source.run(warmup)
    measured = replace(
        _spec(
            settings,
            url,
            f"benchmark-{label}",
            duration_s=settings.benchmark_duration,
            host_header=host_header,
        ),
        spawn_rate=float(settings.load_users),
    )
    result = source.run(measured)
    if result.requests == 0:
        raise CheckFailed(
            f"benchmark {label}: no request to {url}{BENCHMARK_PATH} completed in {result.measured_s:.0f}s"
        )
    if result.error_rate > settings.max_error_rate:
        kinds = "; ".join(f"{g.occurrences}x {g.error}" for g in result.failures_by_type[:3])
        raise CheckFailed(
            f"benchmark {label}: {result.error_rate:.1%} of {result.requests} requests to "
            f"{url}{BENCHMARK_PATH} "
            f"failed (more than --meshcheck-max-error-rate {settings.max_error_rate:.1%}), so its latency "
            f"and throughput would describe errors, not service: {kinds}"
        )
    return TargetMeasurement(label=label, result=result)
