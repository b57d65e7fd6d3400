from __future__ import annotations

import json
from typing import Any

import pytest
from meshlab_jsonpatch import apply_patch

from pytest_meshcheck.lab.mesh.injector import (
    InjectionConfig,
    canonical_name,
    inject_patch,
    injection_decision,
    pod_workload_name,
    skewed_tag,
)


def bookinfo_pod(**labels: str) -> dict[str, Any]:
    base = {"app": "reviews", "version": "v2", "pod-template-hash": "7d9f8c6b5"}
    base.update(labels)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "reviews-v2-7d9f8c6b5-",
            "namespace": "bookinfo",
            "labels": base,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "reviews-v2-7d9f8c6b5",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "containers": [
                {
                    "name": "reviews",
                    "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2",
                    "ports": [{"containerPort": 9080}],
                    "readinessProbe": {"httpGet": {"path": "/health", "port": 9080}},
                }
            ],
        },
    }


CONFIG = InjectionConfig(hub="docker.io/istio", tag="1.24.2")
ENABLED = {"istio-injection": "enabled"}


def injected(
    pod: dict[str, Any],
    ns_labels: dict[str, str],
    config: InjectionConfig = CONFIG,
    faults: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    decision, patch = inject_patch(pod, "bookinfo", ns_labels, config, faults=faults)
    assert decision.inject, decision.reason
    return apply_patch(pod, patch)


def test_default_injection_shape() -> None:
    pod = injected(bookinfo_pod(), ENABLED)
    spec, meta = pod["spec"], pod["metadata"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-init"]
    assert [c["name"] for c in spec["containers"]] == ["reviews", "istio-proxy"]
    init, proxy = spec["initContainers"][0], spec["containers"][1]
    assert init["image"] == proxy["image"] == "docker.io/istio/proxyv2:1.24.2"
    assert init["args"][:3] == ["istio-iptables", "-p", "15001"]
    assert proxy["args"][:2] == ["proxy", "sidecar"]
    assert proxy["ports"] == [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert proxy["readinessProbe"]["httpGet"]["port"] == 15021
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["CA_ADDR"] == "istiod.istio-system.svc:15012"
    assert env["ISTIO_META_WORKLOAD_NAME"] == "reviews-v2"
    assert "restartPolicy" not in proxy
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init"]
    assert status["containers"] == ["istio-proxy"]
    assert "istiod-ca-cert" in status["volumes"]
    assert status["revision"] == "default"
    assert {v["name"] for v in spec["volumes"]} >= set(status["volumes"])
    assert meta["annotations"]["prometheus.io/port"] == "15020"
    assert meta["annotations"]["prometheus.io/path"] == "/stats/prometheus"
    assert meta["annotations"]["prometheus.io/scrape"] == "true"
    assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == "reviews"
    labels = meta["labels"]
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert labels["service.istio.io/canonical-name"] == "reviews"
    assert labels["service.istio.io/canonical-revision"] == "v2"
    assert labels["app"] == "reviews"
    # The app's HTTP probe now goes through pilot-agent, the original kept for it.
    probe = spec["containers"][0]["readinessProbe"]["httpGet"]
    assert probe == {"path": "/app-health/reviews/readyz", "port": 15020, "scheme": "HTTP"}
    probers = json.loads(env["ISTIO_KUBE_APP_PROBERS"] or "{}")
    assert probers["/app-health/reviews/readyz"]["httpGet"] == {"path": "/health", "port": 9080}


def test_native_sidecar_shape() -> None:
    config = InjectionConfig(tag="1.24.2", native_sidecars=True)
    pod = injected(bookinfo_pod(), ENABLED, config)
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-init", "istio-proxy"]
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["reviews"]
    status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init", "istio-proxy"]


def test_revisioned_injection() -> None:
    config = InjectionConfig(tag="1.25.0", revision="canary")
    pod = injected(bookinfo_pod(), {"istio.io/rev": "canary"}, config)
    proxy = pod["spec"]["containers"][-1]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["CA_ADDR"] == "istiod-canary.istio-system.svc:15012"
    assert proxy["image"].endswith("proxyv2:1.25.0")
    assert pod["metadata"]["labels"]["istio.io/rev"] == "canary"
    assert json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"] == "canary"
    # The default istiod leaves the canary namespace alone, and the canary the default one.
    assert not injection_decision(bookinfo_pod(), "bookinfo", {"istio.io/rev": "canary"}, CONFIG).inject
    assert not injection_decision(bookinfo_pod(), "bookinfo", ENABLED, config).inject
    # istio-injection wins over istio.io/rev on the namespace.
    both = {"istio-injection": "enabled", "istio.io/rev": "canary"}
    assert injection_decision(bookinfo_pod(), "bookinfo", both, CONFIG).inject


def test_revision_tag_injection() -> None:
    """A namespace labelled with a tag (``istio.io/rev: prod``) is injected by the revision the tag
    points at, with that revision's proxy; a revision the tag does not point at leaves it alone."""
    tagged = {"istio.io/rev": "prod"}
    target = InjectionConfig(tag="1.27.1", revision="1-27-1", tags=frozenset({"prod"}))
    other = InjectionConfig(tag="1.26.3", revision="1-26-3")
    assert injection_decision(bookinfo_pod(), "bookinfo", tagged, target).inject
    assert not injection_decision(bookinfo_pod(), "bookinfo", tagged, other).inject
    pod = injected(bookinfo_pod(), tagged, target)
    proxy = pod["spec"]["containers"][-1]
    assert proxy["image"].endswith("proxyv2:1.27.1")
    assert json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])["revision"] == "1-27-1"


@pytest.mark.parametrize(
    ("ns_labels", "pod_labels", "annotations", "expected"),
    [
        ({}, {}, {}, False),
        (ENABLED, {}, {}, True),
        ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, {}, False),
        (ENABLED, {"sidecar.istio.io/inject": "false"}, {}, False),
        (ENABLED, {}, {"sidecar.istio.io/inject": "false"}, False),
        (ENABLED, {"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}, True),
        ({}, {"sidecar.istio.io/inject": "true"}, {}, True),
        ({}, {"istio.io/rev": "default"}, {}, True),
        ({}, {}, {"sidecar.istio.io/inject": "true"}, False),
    ],
)
def test_policy(
    ns_labels: dict[str, str], pod_labels: dict[str, str], annotations: dict[str, str], expected: bool
) -> None:
    pod = bookinfo_pod(**pod_labels)
    pod["metadata"]["annotations"] = annotations
    assert injection_decision(pod, "bookinfo", ns_labels, CONFIG).inject is expected


def test_policy_disabled_requires_opt_in_and_host_network_is_skipped() -> None:
    config = InjectionConfig(policy="disabled")
    assert not injection_decision(bookinfo_pod(), "bookinfo", ENABLED, config).inject
    opted = bookinfo_pod(**{"sidecar.istio.io/inject": "true"})
    assert injection_decision(opted, "bookinfo", ENABLED, config).inject
    host = bookinfo_pod()
    host["spec"]["hostNetwork"] = True
    assert not injection_decision(host, "bookinfo", ENABLED, CONFIG).inject
    assert not injection_decision(bookinfo_pod(), "kube-system", ENABLED, CONFIG).inject


def test_injection_off_fault_returns_pod_unchanged() -> None:
    decision, patch = inject_patch(
        bookinfo_pod(), "bookinfo", ENABLED, CONFIG, faults=frozenset({"injection-off"})
    )
    assert not decision.inject
    assert patch == []


def test_proxy_skew_fault_uses_an_older_proxy() -> None:
    pod = injected(bookinfo_pod(), ENABLED, faults=frozenset({"proxy-skew"}))
    assert pod["spec"]["containers"][-1]["image"] == "docker.io/istio/proxyv2:1.22.0"
    assert pod["spec"]["initContainers"][0]["image"] == "docker.io/istio/proxyv2:1.22.0"
    assert skewed_tag("1.3.1") == "1.1.0"


def test_config_from_configmap() -> None:
    values = {
        "global": {"hub": "gcr.io/istio-release", "tag": "1.23.1", "proxy": {"image": "proxyv2"}},
        "revision": "stable",
    }
    config = InjectionConfig.from_configmap(
        {"config": "policy: disabled\n", "values": json.dumps(values)}, native_sidecars=True
    )
    assert config.proxy_image_ref() == "gcr.io/istio-release/proxyv2:1.23.1"
    assert config.policy == "disabled"
    assert config.revision == "stable"
    assert config.native_sidecars


def test_workload_and_canonical_names() -> None:
    pod = bookinfo_pod()
    assert pod_workload_name(pod) == "reviews-v2"
    assert canonical_name({"app.kubernetes.io/name": "x", "app": "y"}, "w") == "x"
    assert canonical_name({}, "w") == "w"
