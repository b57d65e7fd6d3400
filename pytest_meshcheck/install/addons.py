"""Prometheus and Kiali, pinned to the versions each Istio release ships in samples/addons.

Kiali computes its graph from Prometheus, and both must understand the telemetry the installed
proxies emit, so their versions follow the Istio minor version. For a minor newer than the table
knows, the newest known pins are used and ``AddonPins.exact`` says so (reported, not hidden).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from string import Template

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.install.images import rewrite_documents
from pytest_meshcheck.kube.apply import ObjectRef, apply_documents, delete_documents, load_documents
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.wait import wait_for_rollout
from pytest_meshcheck.resources import data_file
from pytest_meshcheck.settings import Settings

ADDON_NAMESPACE = "istio-system"

#: Istio minor -> (Prometheus image, Kiali image), as in that release's samples/addons.
ADDON_IMAGES: Mapping[tuple[int, int], tuple[str, str]] = {
    (1, 26): ("docker.io/prom/prometheus:v3.2.1", "quay.io/kiali/kiali:v2.8.0"),
    (1, 27): ("docker.io/prom/prometheus:v3.4.2", "quay.io/kiali/kiali:v2.12.0"),
    (1, 28): ("docker.io/prom/prometheus:v3.5.0", "quay.io/kiali/kiali:v2.17.0"),
    (1, 29): ("docker.io/prom/prometheus:v3.8.1", "quay.io/kiali/kiali:v2.21.0"),
    (1, 30): ("docker.io/prom/prometheus:v3.10.0", "quay.io/kiali/kiali:v2.26.0"),
}

ProgressReporter = Callable[[str, float], None]


@dataclass(frozen=True, kw_only=True)
class AddonPins:
    prometheus_image: str
    kiali_image: str
    #: False when the Istio minor is not in the table and the nearest known pins were used.
    exact: bool


def minor_of(version: str) -> tuple[int, int]:
    major, minor, *_ = version.split(".")
    return int(major), int(minor)


def addon_pins(istio_version: str) -> AddonPins:
    minor = minor_of(istio_version)
    if minor in ADDON_IMAGES:
        prometheus, kiali = ADDON_IMAGES[minor]
        return AddonPins(prometheus_image=prometheus, kiali_image=kiali, exact=True)
    known = sorted(ADDON_IMAGES)
    nearest = known[-1] if minor > known[-1] else known[0]
    prometheus, kiali = ADDON_IMAGES[nearest]
    return AddonPins(prometheus_image=prometheus, kiali_image=kiali, exact=False)


def scrape_interval(settings: Settings) -> str:
    """A few seconds on the lab (fast feedback), Istio's 15 s elsewhere."""
    return "5s" if settings.cluster == "lab" else "15s"


def render_addons(settings: Settings) -> str:
    pins = addon_pins(settings.istio_version)
    values = {
        "NAMESPACE": ADDON_NAMESPACE,
        "PROMETHEUS_IMAGE": pins.prometheus_image,
        "KIALI_IMAGE": pins.kiali_image,
        "SCRAPE_INTERVAL": scrape_interval(settings),
    }
    parts = []
    for name in ("prometheus.yaml", "kiali.yaml"):
        try:
            parts.append(Template(data_file("addons", name).read_text()).substitute(values))
        except (KeyError, ValueError) as exc:
            raise InstallError(f"the addon manifest {name} has a bad placeholder: {exc}") from exc
    return "\n---\n".join(parts)


def addon_documents(settings: Settings) -> list[dict[str, object]]:
    docs = load_documents(render_addons(settings), source="addon manifests")
    return rewrite_documents(docs, settings.image_registry)


def install_addons(
    kube: Kube, settings: Settings, progress: ProgressReporter | None = None
) -> list[ObjectRef]:
    applied = apply_documents(kube, addon_documents(settings), timeout=settings.timeout)
    for name in ("prometheus", "kiali"):
        wait_for_rollout(kube, ADDON_NAMESPACE, name, timeout=settings.timeout, progress=progress)
    return applied


def uninstall_addons(kube: Kube, settings: Settings) -> None:
    delete_documents(kube, addon_documents(settings), timeout=settings.timeout)
