"""Webhook admission: AdmissionReview over HTTPS, caBundle verification, matching, JSONPatch,
failure policies; Istio's sidecar injector relies on exactly this path."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from lab_api_support import Lab, WebhookServer

from pytest_meshcheck.lab.store import GVR

MUTATING = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
POD_RULES = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]


def _inject(request: dict[str, Any]) -> dict[str, Any]:
    patch = [
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "istio-proxy", "image": "proxyv2:1"}},
        {"op": "add", "path": "/metadata/annotations", "value": {"sidecar.istio.io/status": "injected"}},
    ]
    return {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }


def _deny_privileged(request: dict[str, Any]) -> dict[str, Any]:
    if request["object"]["metadata"].get("labels", {}).get("privileged") == "true":
        return {
            "allowed": False,
            "status": {"code": 403, "reason": "Forbidden", "message": "privileged pods are not allowed"},
        }
    return {"allowed": True}


@pytest.fixture
def injector(lab: Lab, ns: str) -> Iterator[WebhookServer]:
    server = WebhookServer("127.0.0.7", _inject, dns_names=(f"injector.{ns}.svc",))
    yield server
    server.close()
    for name in [o["metadata"]["name"] for o in lab.store.list(MUTATING)[0]]:
        lab.store.delete(MUTATING, None, name)
    for name in [o["metadata"]["name"] for o in lab.store.list(VALIDATING)[0]]:
        lab.store.delete(VALIDATING, None, name)


def _pod(name: str, labels: dict[str, str] | None = None) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": "img:1"}]},
        }
    )


def _webhook_config(kind: str, name: str, client_config: dict[str, Any], **extra: Any) -> str:
    webhook = {
        "name": name,
        "clientConfig": client_config,
        "rules": POD_RULES,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }
    return json.dumps(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name.replace(".", "-")},
            "webhooks": [webhook],
        }
    )


def test_mutating_webhook_by_service_with_namespace_selector(
    lab: Lab, ns: str, injector: WebhookServer
) -> None:
    lab.kubectl("label", "namespace", ns, "istio-injection=enabled")
    lab.store.create(
        GVR.core("services"),
        {
            "metadata": {"name": "injector"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": injector.port}]},
        },
        namespace=ns,
    )
    endpoints = {
        "metadata": {"name": "injector"},
        "subsets": [
            {"addresses": [{"ip": "127.0.0.7"}], "ports": [{"name": "https", "port": injector.port}]}
        ],
    }
    lab.store.create(GVR.core("endpoints"), endpoints, namespace=ns)
    service_ref = {
        "service": {"name": "injector", "namespace": ns, "port": 443, "path": "/inject"},
        "caBundle": injector.ca_bundle,
    }
    config = _webhook_config(
        "MutatingWebhookConfiguration", "sidecar-injector.lab.example", service_ref,
        namespaceSelector={"matchLabels": {"istio-injection": "enabled"}},
        objectSelector={
            "matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]
        },
    )  # fmt: skip
    lab.kubectl("apply", "-f", "-", input=config)
    lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("injected"))
    pod = json.loads(lab.kubectl("-n", ns, "get", "pod", "injected", "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app", "istio-proxy"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/status"] == "injected"
    assert injector.calls[-1]["apiVersion"] == "admission.k8s.io/v1"
    review = injector.calls[-1]["request"]
    assert review["operation"] == "CREATE" and review["namespace"] == ns and review["kind"]["kind"] == "Pod"
    lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("opted-out", {"sidecar.istio.io/inject": "false"}))
    pod = json.loads(lab.kubectl("-n", ns, "get", "pod", "opted-out", "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]
    other = lab.namespace("plain")
    lab.kubectl("-n", other, "apply", "-f", "-", input=_pod("not-selected"))
    assert (
        len(
            json.loads(lab.kubectl("-n", other, "get", "pod", "not-selected", "-o", "json").stdout)["spec"][
                "containers"
            ]
        )
        == 1
    )


def test_validating_webhook_denies_with_message(lab: Lab, ns: str) -> None:
    server = WebhookServer("127.0.0.8", _deny_privileged)
    try:
        config = _webhook_config(
            "ValidatingWebhookConfiguration",
            "policy.lab.example",
            {"url": f"https://127.0.0.8:{server.port}/validate", "caBundle": server.ca_bundle},
        )
        lab.kubectl("apply", "-f", "-", input=config)
        denied = lab.kubectl(
            "-n", ns, "apply", "-f", "-", input=_pod("bad", {"privileged": "true"}), check=False
        )
        assert denied.returncode != 0
        assert (
            'admission webhook "policy.lab.example" denied the request: privileged pods are not allowed'
            in denied.stderr
        )
        lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("good"))
    finally:
        server.close()
        lab.store.delete(VALIDATING, None, "policy-lab-example")


def test_failure_policy_fail_and_ignore(lab: Lab, ns: str) -> None:
    unreachable = {"url": "https://127.0.0.9:9/never"}
    lab.kubectl(
        "apply",
        "-f",
        "-",
        input=_webhook_config(
            "MutatingWebhookConfiguration", "down.lab.example", unreachable, failurePolicy="Fail"
        ),
    )
    try:
        failed = lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("blocked"), check=False)
        assert failed.returncode != 0
        assert 'Internal error occurred: failed calling webhook "down.lab.example"' in failed.stderr
        lab.kubectl(
            "patch",
            "mutatingwebhookconfiguration",
            "down-lab-example",
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]',
        )
        lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("allowed"))
    finally:
        lab.store.delete(MUTATING, None, "down-lab-example")


def test_untrusted_certificate_is_a_call_failure(lab: Lab, ns: str) -> None:
    server = WebhookServer("127.0.0.10", _deny_privileged)
    other_ca = WebhookServer("127.0.0.11", _deny_privileged)
    try:
        config = _webhook_config(
            "ValidatingWebhookConfiguration",
            "wrongca.lab.example",
            {"url": f"https://127.0.0.10:{server.port}/", "caBundle": other_ca.ca_bundle},
        )
        lab.kubectl("apply", "-f", "-", input=config)
        failed = lab.kubectl("-n", ns, "apply", "-f", "-", input=_pod("p"), check=False)
        assert (
            failed.returncode != 0
            and "failed calling webhook" in failed.stderr
            and "certificate" in failed.stderr
        )
        assert server.calls == []
    finally:
        server.close()
        other_ca.close()
        lab.store.delete(VALIDATING, None, "wrongca-lab-example")
