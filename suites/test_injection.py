"""Sidecar injection suite.

Every pod in injected namespaces carries istio-proxy and its init, pods elsewhere carry none, a
pod created now in a labelled namespace gets injected (the webhook works now, not only at install
time), and the opt-out label and revision labels are honoured.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_meshcheck.checks.injection import (
    create_injection_probe,
    injection_findings,
    inspect_pod,
    pod_summary,
)
from pytest_meshcheck.checks.probe import Probe
from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.install.bookinfo import AppInstall
from pytest_meshcheck.install.istio import MeshInstall
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.report import attach_evidence

pytestmark = pytest.mark.meshcheck_injection


def _pods(kube: Kube, namespace: str) -> list[Any]:
    return list(kube.core.list_namespaced_pod(namespace).items)


def _fail_on(findings: list[str], what: str) -> None:
    if findings:
        raise CheckFailed(f"{what}: {len(findings)} problem(s)\n" + "\n".join(f"  - {f}" for f in findings))


def test_every_bookinfo_pod_carries_a_sidecar(
    meshcheck_kube: Kube, meshcheck_bookinfo: AppInstall, meshcheck_mesh: MeshInstall
) -> None:
    pods = _pods(meshcheck_kube, meshcheck_bookinfo.namespace)
    attach_evidence("bookinfo pod specs", [pod_summary(p) for p in pods], "json")
    assert len(pods) >= len(meshcheck_bookinfo.deployments), "fewer Bookinfo pods than deployments"
    _fail_on(
        injection_findings(pods, expect_injected=True, revision=meshcheck_mesh.revision),
        f"sidecar injection in {meshcheck_bookinfo.namespace}",
    )


def test_pods_outside_the_mesh_have_no_sidecar(meshcheck_kube: Kube, meshcheck_probe: Probe) -> None:
    namespace = meshcheck_probe.namespaces["outside"]
    pods = _pods(meshcheck_kube, namespace)
    attach_evidence("pod specs outside the mesh", [pod_summary(p) for p in pods], "json")
    assert pods, f"no pods in {namespace}"
    _fail_on(injection_findings(pods, expect_injected=False, revision=""), f"pods in {namespace}")


def test_a_new_pod_in_a_labelled_namespace_is_injected_now(
    meshcheck_kube: Kube, meshcheck_namespace: Any, meshcheck_mesh: MeshInstall
) -> None:
    namespace = meshcheck_namespace("inject-now", injected=True)
    pod = create_injection_probe(meshcheck_kube, namespace, "fresh")
    attach_evidence("new pod spec", pod_summary(pod), "json")
    _fail_on(
        injection_findings([pod], expect_injected=True, revision=meshcheck_mesh.revision),
        "injection of a pod created after the install",
    )


def test_opt_out_label_is_honoured(meshcheck_kube: Kube, meshcheck_namespace: Any) -> None:
    namespace = meshcheck_namespace("opt-out", injected=True)
    pod = create_injection_probe(
        meshcheck_kube, namespace, "opted-out", labels={"sidecar.istio.io/inject": "false"}
    )
    attach_evidence("opted-out pod spec", pod_summary(pod), "json")
    seen = inspect_pod(pod)
    if seen.has_proxy:
        raise CheckFailed(
            f"{namespace}/opted-out has label sidecar.istio.io/inject=false but got istio-proxy"
        )


def test_revision_label_selects_the_installed_revision(
    meshcheck_kube: Kube, meshcheck_namespace: Any, meshcheck_mesh: MeshInstall
) -> None:
    if not meshcheck_mesh.revision:
        pytest.skip("the mesh is installed without a revision (--meshcheck-istio-revision not set)")
    namespace = meshcheck_namespace("by-revision", labels={"istio.io/rev": meshcheck_mesh.revision})
    pod = create_injection_probe(meshcheck_kube, namespace, "by-revision")
    attach_evidence("revision-injected pod spec", pod_summary(pod), "json")
    _fail_on(
        injection_findings([pod], expect_injected=True, revision=meshcheck_mesh.revision),
        f"injection by istio.io/rev={meshcheck_mesh.revision}",
    )
