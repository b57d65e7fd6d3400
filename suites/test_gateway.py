"""Ingress gateway suite.

The gateway's address is resolved the way the provider says, /productpage answers 200 with the
Bookinfo title, every reviews version is served over repeated requests (the round-robin is real),
unknown paths give 404, and the gateway pod is ready at the control plane's version.
"""

from __future__ import annotations

import pytest

from pytest_meshcheck.checks.gateway import TITLE, get, sample_reviews_versions, wait_for_route
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.install.istio import GATEWAY_NAME, ISTIO_NAMESPACE, MeshInstall, image_tag
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.wait import pod_is_ready
from pytest_meshcheck.report import attach_evidence, record_figure
from pytest_meshcheck.settings import Settings

pytestmark = pytest.mark.meshcheck_gateway

REVIEWS_VERSIONS = {"v1", "v2", "v3"}
SAMPLES = 30


def test_gateway_pods_are_ready_at_the_control_plane_version(
    meshcheck_kube: Kube, meshcheck_mesh: MeshInstall
) -> None:
    pods = meshcheck_kube.core.list_namespaced_pod(
        ISTIO_NAMESPACE, label_selector="istio=ingressgateway"
    ).items
    summary = [
        {
            "pod": p.metadata.name,
            "ready": pod_is_ready(p),
            "proxy": [c.image for c in p.spec.containers if c.name == "istio-proxy"],
        }
        for p in pods
    ]
    attach_evidence("ingress gateway pods", summary, "json")
    if not pods:
        raise CheckFailed(f"no ingress gateway pods (label istio=ingressgateway) in {ISTIO_NAMESPACE}")
    problems = []
    for pod in pods:
        if not pod_is_ready(pod):
            problems.append(f"{pod.metadata.name} is not ready")
        for container in pod.spec.containers:
            if container.name == "istio-proxy" and image_tag(container.image or "") != meshcheck_mesh.version:
                problems.append(
                    f"{pod.metadata.name} runs proxy {image_tag(container.image or '')}, "
                    f"control plane is {meshcheck_mesh.version}"
                )
    if problems:
        raise CheckFailed(f"{GATEWAY_NAME}: " + "; ".join(problems))


def test_productpage_answers_through_the_gateway(
    meshcheck_gateway_url: str, meshcheck_bookinfo: AppInstall, meshcheck_settings: Settings
) -> None:
    patience = min(meshcheck_settings.timeout, 120)
    response = wait_for_route(meshcheck_gateway_url, "/productpage", timeout=patience)
    attach_evidence("GET /productpage", response.evidence(), "json")
    if response.status != 200 or TITLE not in response.body:
        raise CheckFailed(
            f"{response.url} answered {response.status or response.error} without the Bookinfo title "
            f"(after waiting {patience:g}s for the route)"
        )
    record_figure(
        "gateway productpage latency", get(meshcheck_gateway_url, "/productpage").seconds * 1000, "ms"
    )


def test_every_reviews_version_is_served(meshcheck_gateway_url: str, meshcheck_bookinfo: AppInstall) -> None:
    seen, bad = sample_reviews_versions(meshcheck_gateway_url, requests_count=SAMPLES)
    attach_evidence(
        "reviews versions over repeated requests",
        {"requests": SAMPLES, "versions": dict(seen), "failed": [r.evidence() for r in bad[:5]]},
        "json",
    )
    if bad:
        raise CheckFailed(
            f"{len(bad)} of {SAMPLES} product page requests failed (first: {bad[0].status or bad[0].error})"
        )
    missing = REVIEWS_VERSIONS - set(seen)
    if missing:
        raise CheckFailed(
            f"reviews {', '.join(sorted(missing))} never served in {SAMPLES} requests (seen: {dict(seen)}); "
            "traffic is not reaching every version"
        )


def test_unknown_paths_are_not_routed(meshcheck_gateway_url: str, meshcheck_bookinfo: AppInstall) -> None:
    response = get(meshcheck_gateway_url, "/meshcheck-no-such-route")
    attach_evidence("GET /meshcheck-no-such-route", response.evidence(), "json")
    if response.status != 404:
        raise CheckFailed(f"{response.url} answered {response.status or response.error}, expected 404")
