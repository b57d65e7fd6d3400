"""The lab's sample-application workloads, keyed by image repository.

Registered repository patterns (fnmatch-style, without tag or digest; the runtime strips the tag
and normalises ``docker.io/library/`` forms before matching):

- Bookinfo, each under ``docker.io/istio/``, ``istio/``, ``registry.istio.io/release/`` and
  ``gcr.io/istio-release/``: ``examples-bookinfo-productpage-v1``, ``examples-bookinfo-details-v1``,
  ``examples-bookinfo-ratings-v1``, ``examples-bookinfo-reviews-v1``, ``-v2``, ``-v3``.
- httpbin: ``docker.io/mccutchen/go-httpbin``, ``mccutchen/go-httpbin`` (port 8080) and
  ``docker.io/kennethreitz/httpbin``, ``kennethreitz/httpbin`` (port 80).
- curl/sleep (no server, used through exec): ``docker.io/curlimages/curl``, ``curlimages/curl``,
  ``docker.io/governmentpaas/curl-ssl``, ``governmentpaas/curl-ssl`` (the older sleep sample).
- Locust: ``docker.io/locustio/locust``, ``locustio/locust`` (the real Locust, as a child process).
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_meshcheck.lab.contract import WorkloadFactory
from pytest_meshcheck.lab.workloads.details import details_factory
from pytest_meshcheck.lab.workloads.httpbin import go_httpbin_factory, kennethreitz_httpbin_factory
from pytest_meshcheck.lab.workloads.idle import idle_factory
from pytest_meshcheck.lab.workloads.locust import locust_factory
from pytest_meshcheck.lab.workloads.productpage import productpage_factory
from pytest_meshcheck.lab.workloads.ratings import ratings_factory
from pytest_meshcheck.lab.workloads.reviews import reviews_factory

BOOKINFO_REGISTRIES: tuple[str, ...] = (
    "docker.io/istio",
    "istio",
    "registry.istio.io/release",
    "gcr.io/istio-release",
)
BOOKINFO_IMAGES: dict[str, WorkloadFactory] = {
    "examples-bookinfo-productpage-v1": productpage_factory,
    "examples-bookinfo-details-v1": details_factory,
    "examples-bookinfo-ratings-v1": ratings_factory,
    "examples-bookinfo-reviews-v1": reviews_factory,
    "examples-bookinfo-reviews-v2": reviews_factory,
    "examples-bookinfo-reviews-v3": reviews_factory,
}
OTHER_IMAGES: dict[str, WorkloadFactory] = {
    "docker.io/mccutchen/go-httpbin": go_httpbin_factory,
    "mccutchen/go-httpbin": go_httpbin_factory,
    "docker.io/kennethreitz/httpbin": kennethreitz_httpbin_factory,
    "kennethreitz/httpbin": kennethreitz_httpbin_factory,
    "docker.io/curlimages/curl": idle_factory,
    "curlimages/curl": idle_factory,
    "docker.io/governmentpaas/curl-ssl": idle_factory,
    "governmentpaas/curl-ssl": idle_factory,
    "docker.io/locustio/locust": locust_factory,
    "locustio/locust": locust_factory,
    # Mirrored by --meshcheck-image-registry (any registry and path before the repository).
    "*/locustio/locust": locust_factory,
}


def registered_patterns() -> dict[str, WorkloadFactory]:
    """Every repository pattern this package serves, with its factory."""
    patterns: dict[str, WorkloadFactory] = {}
    for registry in BOOKINFO_REGISTRIES:
        for name, factory in BOOKINFO_IMAGES.items():
            patterns[f"{registry}/{name}"] = factory
    patterns.update(OTHER_IMAGES)
    return patterns


def register_workloads(register: Callable[[str, WorkloadFactory], None]) -> None:
    """Hand every pattern to the runtime's image registry."""
    for pattern, factory in registered_patterns().items():
        register(pattern, factory)
