from __future__ import annotations

import string
from typing import Any

import yaml
from meshlab_objects import group

from pytest_meshcheck.lab.mesh.config import MeshConfig
from pytest_meshcheck.lab.mesh.injector import InjectionConfig
from pytest_meshcheck.lab.mesh.manifests import install_files, manifests_dir, render


def documents(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def test_default_install_names_and_versions() -> None:
    docs = documents(render("1.24.2"))
    deployment = docs[("Deployment", "istiod")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/istio/pilot:1.24.2"
    assert {e["name"]: e.get("value") for e in container["env"]}["REVISION"] == "default"
    service = docs[("Service", "istiod")]
    assert {(p["port"], p.get("targetPort", p["port"])) for p in service["spec"]["ports"]} == {
        (15010, 15010),
        (15012, 15012),
        (443, 15017),
        (15014, 15014),
    }
    webhook = docs[("MutatingWebhookConfiguration", "istio-sidecar-injector")]
    assert [w["name"] for w in webhook["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io",
        "rev.object.sidecar-injector.istio.io",
        "namespace.sidecar-injector.istio.io",
        "object.sidecar-injector.istio.io",
    ]
    assert all(w["failurePolicy"] == "Fail" for w in webhook["webhooks"])
    injector = docs[("ConfigMap", "istio-sidecar-injector")]
    config = InjectionConfig.from_configmap(injector["data"])
    assert config.proxy_image_ref() == "docker.io/istio/proxyv2:1.24.2"
    assert ("ConfigMap", "istio") in docs
    gateway = docs[("Deployment", "istio-ingressgateway")]
    proxy = gateway["spec"]["template"]["spec"]["containers"][0]
    assert proxy["args"][:4] == ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]
    assert gateway["spec"]["template"]["metadata"]["labels"]["istio"] == "ingressgateway"
    lb = docs[("Service", "istio-ingressgateway")]
    assert lb["spec"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"], p["targetPort"]) for p in lb["spec"]["ports"]] == [
        ("status-port", 15021, 15021),
        ("http2", 80, 8080),
        ("https", 443, 8443),
    ]
    crds = {name for kind, name in docs if kind == "CustomResourceDefinition"}
    assert {
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "gateways.networking.istio.io",
        "serviceentries.networking.istio.io",
        "sidecars.networking.istio.io",
        "peerauthentications.security.istio.io",
        "authorizationpolicies.security.istio.io",
        "requestauthentications.security.istio.io",
        "telemetries.telemetry.istio.io",
    } <= crds


def test_revisioned_install_side_by_side() -> None:
    docs = documents(
        render("1.25.0", "canary", hub="gcr.io/istio-release", native_sidecars=True, gateway=False)
    )
    assert ("Deployment", "istiod-canary") in docs and ("Service", "istiod-canary") in docs
    webhook = docs[("MutatingWebhookConfiguration", "istio-sidecar-injector-canary")]
    assert [w["clientConfig"]["service"]["name"] for w in webhook["webhooks"]] == ["istiod-canary"] * 2
    assert webhook["webhooks"][0]["namespaceSelector"]["matchExpressions"][0] == {
        "key": "istio.io/rev",
        "operator": "In",
        "values": ["canary"],
    }
    env = {
        e["name"]: e.get("value")
        for e in docs[("Deployment", "istiod-canary")]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["REVISION"], env["ENABLE_NATIVE_SIDECARS"]) == ("canary", "true")
    config = InjectionConfig.from_configmap(docs[("ConfigMap", "istio-sidecar-injector-canary")]["data"])
    assert (config.revision, config.proxy_image_ref()) == ("canary", "gcr.io/istio-release/proxyv2:1.25.0")
    assert ("Deployment", "istio-ingressgateway") not in docs
    assert install_files("canary")[-2] == "injector-webhook-revision.yaml"


def test_templates_document_their_placeholders() -> None:
    for path in sorted(manifests_dir().glob("*.yaml")):
        text = path.read_text()
        names = {
            m.group("named") or m.group("braced")
            for m in string.Template.pattern.finditer(text)
            if m.group("named") or m.group("braced")
        }
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        for name in names:
            assert name in header, f"{path.name} uses ${{{name}}} without documenting it"


def test_rendered_gateway_service_maps_sample_port_80_to_8080() -> None:
    docs = list(yaml.safe_load_all(render("1.24.2")))
    service = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "istio-ingressgateway"
    )
    service["spec"]["clusterIP"] = "127.9.200.1"
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "bookinfo-gateway", "namespace": "bookinfo"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }
    cfg = MeshConfig(group([service, gateway]))
    labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert [s.listen_port for s in cfg.gateway_servers("istio-system", labels)] == [8080]
