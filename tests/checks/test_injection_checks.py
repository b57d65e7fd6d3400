"""Reading injection from pod specs: classic sidecars, native sidecars, half-injected pods."""

from __future__ import annotations

import json

from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from pytest_meshcheck.checks.injection import injection_findings, inspect_pod


def pod(
    name: str,
    *,
    containers: tuple[str, ...] = ("app",),
    inits: tuple[tuple[str, str | None], ...] = (),
    revision: str | None = None,
) -> V1Pod:
    annotations = {}
    if revision is not None:
        annotations["sidecar.istio.io/status"] = json.dumps(
            {"revision": revision, "containers": ["istio-proxy"]}
        )
    return V1Pod(
        metadata=V1ObjectMeta(name=name, namespace="bookinfo", annotations=annotations),
        spec=V1PodSpec(
            containers=[V1Container(name=c, image=f"img/{c}:1") for c in containers],
            init_containers=[
                V1Container(name=n, image="istio/proxyv2:1.27.1", restart_policy=p) for n, p in inits
            ],
        ),
    )


def test_classic_sidecar() -> None:
    seen = inspect_pod(
        pod("a", containers=("app", "istio-proxy"), inits=(("istio-init", None),), revision="default")
    )
    assert seen.injected
    assert not seen.native_sidecar
    assert seen.status_revision == "default"


def test_native_sidecar_counts_as_injected() -> None:
    seen = inspect_pod(pod("a", inits=(("istio-init", None), ("istio-proxy", "Always")), revision="canary"))
    assert seen.injected
    assert seen.native_sidecar
    assert (
        injection_findings(
            [pod("a", inits=(("istio-init", None), ("istio-proxy", "Always")), revision="canary")],
            expect_injected=True,
            revision="canary",
        )
        == []
    )


def test_istio_proxy_init_without_always_is_not_a_sidecar() -> None:
    assert not inspect_pod(pod("a", inits=(("istio-proxy", None),), revision="default")).has_proxy


def test_missing_proxy_wrong_revision_and_half_injection_are_findings() -> None:
    pods = [
        pod("plain"),
        pod("wrong-rev", containers=("app", "istio-proxy"), inits=(("istio-init", None),), revision="old"),
        pod("no-init", containers=("app", "istio-proxy"), revision="default"),
    ]
    findings = injection_findings(pods, expect_injected=True, revision="")
    assert findings == [
        "bookinfo/plain: no istio-proxy sidecar",
        "bookinfo/wrong-rev: injected by revision 'old', expected 'default'",
        "bookinfo/no-init: istio-proxy present but no istio-init/istio-validation init container",
    ]


def test_sidecar_in_a_namespace_that_should_have_none() -> None:
    injected = pod("x", containers=("app", "istio-proxy"), inits=(("istio-init", None),), revision="default")
    assert injection_findings([injected], expect_injected=False, revision="") == [
        "bookinfo/x: has a sidecar but its namespace is not injected"
    ]
    assert injection_findings([pod("y")], expect_injected=False, revision="") == []
