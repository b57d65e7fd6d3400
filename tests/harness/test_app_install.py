"""Installing applications on the lab: namespaces with the right injection labels, rollouts, cleanup."""

from __future__ import annotations

from pytest_meshcheck.install.bookinfo import (
    PROBE_IN_MESH_NAMESPACE,
    PROBE_OUTSIDE_NAMESPACE,
    delete_namespace,
    ensure_namespace,
    install_probes,
    peer_authentication_documents,
)
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.exec import exec_in_pod
from pytest_meshcheck.settings import default_settings


def test_probe_apps_install_in_labelled_namespaces_and_talk(kube: Kube) -> None:
    settings = default_settings(timeout="120s")
    inside, outside = install_probes(kube, settings)
    assert inside.namespace == PROBE_IN_MESH_NAMESPACE
    assert set(inside.deployments) == {"httpbin", "curl"}
    assert outside.deployments == ("curl",)
    labels_in = kube.core.read_namespace(PROBE_IN_MESH_NAMESPACE).metadata.labels
    labels_out = kube.core.read_namespace(PROBE_OUTSIDE_NAMESPACE).metadata.labels
    assert labels_in["istio-injection"] == "enabled"
    assert labels_out["istio-injection"] == "disabled"
    (curl,) = kube.core.list_namespaced_pod(PROBE_OUTSIDE_NAMESPACE, label_selector="app=curl").items
    result = exec_in_pod(
        kube,
        PROBE_OUTSIDE_NAMESPACE,
        curl.metadata.name,
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://httpbin.{PROBE_IN_MESH_NAMESPACE}:8000/ip",
        ],
    )
    assert (result.exit_code, result.stdout) == (0, "200")
    for namespace in (PROBE_IN_MESH_NAMESPACE, PROBE_OUTSIDE_NAMESPACE):
        delete_namespace(kube, namespace, timeout=120)
        assert namespace not in {n.metadata.name for n in kube.core.list_namespace().items}


def test_revision_label_replaces_the_default_injection_label(kube: Kube) -> None:
    ensure_namespace(kube, "rev-move", {"istio-injection": "enabled"})
    ensure_namespace(kube, "rev-move", {"istio.io/rev": "canary"}, remove=("istio-injection",))
    labels = kube.core.read_namespace("rev-move").metadata.labels
    assert labels["istio.io/rev"] == "canary"
    assert "istio-injection" not in labels
    delete_namespace(kube, "rev-move", timeout=60)


def test_mesh_policy_mode_follows_the_setting() -> None:
    (strict,) = peer_authentication_documents(default_settings())
    (permissive,) = peer_authentication_documents(default_settings(mtls_mode="permissive"))
    assert strict["spec"]["mtls"]["mode"] == "STRICT"
    assert permissive["spec"]["mtls"]["mode"] == "PERMISSIVE"
    assert strict["metadata"] == {"name": "default", "namespace": "istio-system"}
