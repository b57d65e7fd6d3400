"""Versions suite.

The control plane runs the requested version; every proxy is within Istio's supported skew of it
(at most one minor behind, never ahead) and connected to a live istiod; analyze-style findings
(namespace not injected, pod without proxy, proxy image mismatch) are reported.
"""

from __future__ import annotations

import pytest

from pytest_meshcheck.checks.injection import inspect_pod
from pytest_meshcheck.checks.versions import await_connected_proxies, meshed_pods, proxy_id, skew_findings
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.install.istio import MeshInstall, image_tag, proxy_versions
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.report import attach_evidence, record_version
from pytest_meshcheck.settings import Settings

pytestmark = pytest.mark.meshcheck_versions


def test_control_plane_runs_the_requested_version(
    meshcheck_mesh: MeshInstall, meshcheck_settings: Settings
) -> None:
    record_version("istiod", meshcheck_mesh.version)
    attach_evidence(
        "control plane",
        {
            "version": meshcheck_mesh.version,
            "revision": meshcheck_mesh.revision,
            "method": meshcheck_mesh.method,
        },
        "json",
    )
    if meshcheck_settings.install_method == "skip":
        pytest.skip(
            f"--meshcheck-install=skip: the installed control plane ({meshcheck_mesh.version}) "
            "is reported, not judged"
        )
    if meshcheck_mesh.version != meshcheck_settings.istio_version:
        raise CheckFailed(
            f"istiod runs {meshcheck_mesh.version}, but {meshcheck_settings.istio_version} was requested"
        )


def test_every_proxy_is_within_the_supported_skew(
    meshcheck_kube: Kube, meshcheck_mesh: MeshInstall, meshcheck_bookinfo: AppInstall
) -> None:
    versions = proxy_versions(meshed_pods(meshcheck_kube))
    attach_evidence("proxy versions", versions, "json")
    for version in sorted(set(versions.values())):
        record_version(f"proxy {version}", version)
    assert versions, "no pod with an istio-proxy was found"
    findings = skew_findings(meshcheck_mesh.version, versions)
    if findings:
        raise CheckFailed(f"{len(findings)} proxies outside Istio's supported skew:\n" + "\n".join(findings))


def test_every_proxy_is_connected_to_a_live_istiod(
    meshcheck_kube: Kube,
    meshcheck_mesh: MeshInstall,
    meshcheck_bookinfo: AppInstall,
    meshcheck_settings: Settings,
) -> None:
    expected = {proxy_id(p) for p in meshed_pods(meshcheck_kube)}
    missing, rows = await_connected_proxies(
        meshcheck_kube, meshcheck_mesh.istiod_name, expected, timeout=min(meshcheck_settings.timeout, 60)
    )
    attach_evidence("istiod /debug/syncz", rows, "json")
    if missing:
        raise CheckFailed(
            f"{len(missing)} proxies are not connected to {meshcheck_mesh.istiod_name}: "
            + ", ".join(sorted(missing))
        )


def test_analyze_findings_for_the_application_namespace(
    meshcheck_kube: Kube, meshcheck_mesh: MeshInstall, meshcheck_bookinfo: AppInstall
) -> None:
    namespace = meshcheck_kube.core.read_namespace(meshcheck_bookinfo.namespace)
    labels = namespace.metadata.labels or {}
    errors: list[str] = []
    warnings: list[str] = []
    wanted = (
        {"istio.io/rev": meshcheck_mesh.revision}
        if meshcheck_mesh.revision
        else {"istio-injection": "enabled"}
    )
    for key, value in wanted.items():
        if labels.get(key) != value:
            errors.append(f"namespace {meshcheck_bookinfo.namespace} is not injected ({key}={value} missing)")
    for pod in meshcheck_kube.core.list_namespaced_pod(meshcheck_bookinfo.namespace).items:
        seen = inspect_pod(pod)
        if not seen.has_proxy:
            errors.append(f"pod {pod.metadata.name} has no istio-proxy")
        elif image_tag(seen.proxy_image) != meshcheck_mesh.version:
            warnings.append(
                f"pod {pod.metadata.name} runs proxy image {seen.proxy_image}; "
                f"control plane is {meshcheck_mesh.version}"
            )
    attach_evidence("analyze findings", {"errors": errors, "warnings": warnings}, "json")
    if errors:
        raise CheckFailed("analyze found:\n" + "\n".join(errors + warnings))
