"""The kube layer against a real API (the lab): apply, waits, exec, services/proxy, diagnostics."""

from __future__ import annotations

import uuid

import pytest
import yaml

from pytest_meshcheck.errors import InstallError, ReadinessTimeout
from pytest_meshcheck.kube.apply import apply_manifest, delete_documents, load_documents
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.diagnostics import collect
from pytest_meshcheck.kube.exec import exec_in_pod
from pytest_meshcheck.kube.proxy import service_request
from pytest_meshcheck.kube.services import reach_service
from pytest_meshcheck.kube.wait import wait_for_pods_ready, wait_for_rollout
from pytest_meshcheck.resources import data_file

BOOKINFO_DEPLOYMENTS = (
    "details-v1",
    "ratings-v1",
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "productpage-v1",
)


def namespace_doc(name: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture(scope="module")
def bookinfo(kube: Kube) -> str:
    namespace = "bookinfo-kube-layer"
    manifest = namespace_doc(namespace) + "---\n" + data_file("bookinfo", "bookinfo.yaml").read_text()
    applied = apply_manifest(kube, manifest, namespace=namespace)
    assert len(applied) == 15
    for name in BOOKINFO_DEPLOYMENTS:
        wait_for_rollout(kube, namespace, name, timeout=120)
    return namespace


def test_server_version(kube: Kube) -> None:
    assert kube.server_version().startswith("v1.")


def test_apply_is_idempotent_and_rolls_out(kube: Kube, bookinfo: str) -> None:
    again = apply_manifest(kube, data_file("bookinfo", "bookinfo.yaml").read_text(), namespace=bookinfo)
    assert len(again) == 14
    pods = wait_for_pods_ready(kube, bookinfo, label_selector="app=reviews", min_count=3, timeout=60)
    assert sorted(p.metadata.labels["version"] for p in pods) == ["v1", "v2", "v3"]


def test_crd_and_custom_resource_in_one_bundle(kube: Kube) -> None:
    group = f"{uuid.uuid4().hex[:8]}.meshcheck.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    docs = [widget, crd]  # the CR first: the installer must order and wait for discovery itself
    text = yaml.safe_dump_all(docs)
    applied = apply_manifest(kube, text, namespace="default")
    assert [r.kind for r in applied] == ["CustomResourceDefinition", "Widget"]
    got = kube.custom.get_namespaced_custom_object(group, "v1", "default", "widgets", "w1")
    assert got["spec"]["size"] == 3
    assert "meshcheck" in {m["manager"] for m in got["metadata"].get("managedFields", [])}
    delete_documents(kube, load_documents(text), namespace="default", timeout=60)


def test_exec_returns_output_and_exit_codes(kube: Kube, bookinfo: str) -> None:
    (ratings,) = kube.core.list_namespaced_pod(bookinfo, label_selector="app=ratings").items
    ok = exec_in_pod(kube, bookinfo, ratings.metadata.name, ["curl", "-sS", "productpage:9080/productpage"])
    assert ok.exit_code == 0
    assert "<title>Simple Bookstore App</title>" in ok.stdout
    failed = exec_in_pod(kube, bookinfo, ratings.metadata.name, ["curl", "-sS", "no-such-service:9080/"])
    assert failed.exit_code == 6
    assert "Could not resolve host" in failed.stderr


def test_service_proxy_returns_every_status(kube: Kube, bookinfo: str) -> None:
    page = service_request(kube, bookinfo, "productpage", 9080, "/productpage")
    assert page.status == 200
    assert "Simple Bookstore App" in page.text()
    missing = service_request(kube, bookinfo, "productpage", 9080, "/no-such-page")
    assert missing.status == 404
    details = service_request(kube, bookinfo, "details", "http", "/details/0")
    assert details.status == 200


def test_reach_service_via_nodeport_and_apiserver(kube: Kube, bookinfo: str) -> None:
    assert reach_service(kube, bookinfo, "productpage", 9080).via == "apiserver"
    kube.core.patch_namespaced_service("details", bookinfo, {"spec": {"type": "NodePort"}})
    address = reach_service(kube, bookinfo, "details", "http")
    assert address.via == "nodeport"
    import requests

    assert requests.get(f"{address.url}/details/0", timeout=10).json()["id"] == 0


def test_rollout_timeout_names_what_and_attaches_evidence(kube: Kube) -> None:
    namespace = "kube-layer-broken"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "never"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "never"}},
            "template": {
                "metadata": {"labels": {"app": "never"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/never-pulls:1"}]},
            },
        },
    }
    apply_manifest(kube, namespace_doc(namespace) + "---\n" + yaml.safe_dump(deployment), namespace=namespace)
    with pytest.raises(ReadinessTimeout) as info:
        wait_for_pods_ready(kube, namespace, label_selector="app=never", timeout=8)
    error = info.value
    assert "pods in kube-layer-broken with labels app=never to be ready" in error.message
    assert "ErrImagePull" in error.message or "ImagePullBackOff" in error.message
    assert any(key.startswith("events") for key in error.evidence)
    assert "never-pulls" in error.evidence[f"events {namespace}"]


def test_diagnostics_include_logs_of_every_container(kube: Kube, bookinfo: str) -> None:
    evidence = collect(kube, bookinfo, label_selector="app=productpage")
    assert "productpage-v1" in evidence[f"pods {bookinfo}"]
    assert any(key.startswith(f"logs {bookinfo}/productpage-v1") for key in evidence)


def test_invalid_manifest_is_an_install_error(kube: Kube) -> None:
    with pytest.raises(InstallError, match="not valid YAML"):
        apply_manifest(kube, "kind: [unclosed", namespace="default")
    with pytest.raises(InstallError, match="not a Kubernetes object"):
        apply_manifest(kube, "just: a mapping\n", namespace="default")


def test_reach_service_waits_for_a_service_the_controllers_have_not_seen_yet() -> None:
    """A Service read before any controller wrote its status (``status`` absent) is "no address
    yet", not an AttributeError; the load balancer's address is used once it answers."""
    import socket
    from types import SimpleNamespace

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    spec = SimpleNamespace(
        type="LoadBalancer", ports=[SimpleNamespace(name="http", port=port, node_port=None, target_port=port)]
    )
    answered = SimpleNamespace(
        load_balancer=SimpleNamespace(ingress=[SimpleNamespace(ip="127.0.0.1", hostname=None)])
    )
    reads = iter([None, None, answered])

    def read_namespaced_service(name: str, namespace: str) -> SimpleNamespace:
        return SimpleNamespace(spec=spec, status=next(reads, answered))

    fake = SimpleNamespace(core=SimpleNamespace(read_namespaced_service=read_namespaced_service))
    try:
        address = reach_service(fake, "demo", "web", "http", lb_timeout=30)  # type: ignore[arg-type]
    finally:
        listener.close()
    assert (address.via, address.url) == ("loadbalancer", f"http://127.0.0.1:{port}")
