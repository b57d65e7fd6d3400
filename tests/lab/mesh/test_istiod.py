from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import urllib.request
from io import BytesIO
from typing import Any

import pytest
from meshlab_env import VERSION, MeshLab, mesh_get
from meshlab_fakes import context
from meshlab_jsonpatch import apply_patch
from meshlab_objects import pod

from pytest_meshcheck.lab.httpframing import Headers
from pytest_meshcheck.lab.mesh import register_mesh_workloads
from pytest_meshcheck.lab.mesh.ca import build_csr
from pytest_meshcheck.lab.mesh.discovery import ControlPlaneError, IstiodClient
from pytest_meshcheck.lab.mesh.httpio import Connection, Request, read_response
from pytest_meshcheck.lab.mesh.istiod import Istiod
from pytest_meshcheck.lab.mesh.sources import ResourceRef

WEBHOOK = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "MutatingWebhookConfiguration",
    "metadata": {"name": "istio-sidecar-injector"},
    "webhooks": [
        {
            "name": "namespace.sidecar-injector.istio.io",
            "clientConfig": {
                "service": {"name": "istiod", "namespace": "istio-system", "path": "/inject", "port": 443}
            },
        },
    ],
}


def admission_review(obj: dict[str, Any], namespace: str = "apps") -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "namespace": namespace,
                "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": obj,
            },
        }
    ).encode()


def post_webhook(lab: MeshLab, body: bytes, ca_bundle: bytes) -> dict[str, Any]:
    """POST as the API server does: TLS verified against the caBundle, for the Service's name."""
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    raw = socket.create_connection((lab.istiod_ctx.pod_ip, 15017), timeout=10)
    conn = Connection(context.wrap_socket(raw, server_hostname="istiod.istio-system.svc"))
    request = Request(
        method="POST",
        target="/inject/cluster/Kubernetes/net/network1",
        headers=Headers([("Host", "istiod.istio-system.svc:443"), ("Content-Type", "application/json")]),
        body=body,
    )
    try:
        conn.send(request.encode())
        response = read_response(conn, "POST")
    finally:
        conn.close()
    assert response.status == 200
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def new_pod() -> dict[str, Any]:
    obj = pod("sleep-x", "apps", "", {"app": "sleep"}, sidecar=False)
    obj["metadata"].pop("name")
    obj["metadata"]["generateName"] = "sleep-"
    del obj["status"]
    return obj


def test_webhook_over_tls_with_patched_ca_bundle(lab: MeshLab) -> None:
    lab.store.put(WEBHOOK)
    stored: dict[str, Any] = {}

    def patched() -> bool:
        stored.update(
            lab.store.get(
                ResourceRef.parse("admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"),
                None,
                "istio-sidecar-injector",
            )
        )
        return bool(stored["webhooks"][0]["clientConfig"].get("caBundle"))

    watch = lab.store.watch(None)
    while not patched():
        assert watch.next(timeout=10) is not None, "caBundle never patched"
    bundle = base64.b64decode(stored["webhooks"][0]["clientConfig"]["caBundle"])
    answer = post_webhook(lab, admission_review(new_pod()), bundle)
    response = answer["response"]
    assert (answer["kind"], response["uid"], response["allowed"], response["patchType"]) == (
        "AdmissionReview",
        "u-1",
        True,
        "JSONPatch",
    )
    mutated = apply_patch(new_pod(), json.loads(base64.b64decode(response["patch"])))
    assert [c["name"] for c in mutated["spec"]["containers"]] == ["app", "istio-proxy"]
    assert mutated["spec"]["containers"][1]["image"] == f"docker.io/istio/proxyv2:{VERSION}"
    lab.faults.names.add("injection-off")
    off = post_webhook(lab, admission_review(new_pod()), bundle)["response"]
    assert off["allowed"] is True and "patch" not in off
    lab.faults.names.clear()
    # a namespace without the label is left alone
    lab.store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain", "labels": {}}})
    plain = post_webhook(lab, admission_review(new_pod(), namespace="plain"), bundle)["response"]
    assert "patch" not in plain


def test_root_cert_published_and_ca_kept_in_secret(lab: MeshLab) -> None:
    watch = lab.store.watch(None)
    lab.store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}})
    configmaps = ResourceRef.parse("v1/configmaps")
    while True:
        try:
            cm = lab.store.get(configmaps, "fresh", "istio-ca-root-cert")
            break
        except Exception:
            assert watch.next(timeout=10) is not None
    assert lab.istiod.ca is not None
    assert cm["data"]["root-cert.pem"] == lab.istiod.ca.root_pem.decode()
    # a second istiod (another revision) uses the same root
    ip, _ = lab.addresses.take()
    other_pod = pod(
        "istiod-canary-x", "istio-system", ip, {"app": "istiod"}, sidecar=False, service_account="istiod"
    )
    ctx = context(
        pod=other_pod,
        container="discovery",
        image="docker.io/istio/pilot:1.25.0",
        ip=ip,
        local=ip,
        resolver=lab.resolver,
        env={"REVISION": "canary"},
    )
    canary = Istiod(ctx, store=lab.store)
    canary.start()
    try:
        assert canary.ca is not None and canary.ca.root_pem == lab.istiod.ca.root_pem
        assert canary.webhook_name == "istio-sidecar-injector-canary"
        assert "istiod-canary.istio-system.svc" in canary.serving_names()
        config = canary.injection_config()
        assert (config.revision, config.tag, config.discovery_address) == (
            "canary",
            "1.25.0",
            "istiod-canary.istio-system.svc:15012",
        )
        with urllib.request.urlopen(f"http://{ip}:15014/version", timeout=10) as response:
            assert response.read().decode().strip() == "1.25.0"
    finally:
        canary.stop()


def test_certificates_only_for_the_pods_own_identity(lab: MeshLab) -> None:
    sleep = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    client = IstiodClient(lambda: (lab.istiod_ctx.pod_ip, 15010), proxy_id="t", proxy_version=VERSION)
    _, csr = build_csr("apps", "sleep")
    cert, root = client.sign(csr_pem=csr, namespace="apps", pod="sleep-a", service_account="sleep")
    assert b"BEGIN CERTIFICATE" in cert and root == lab.istiod.ca.root_pem  # type: ignore[union-attr]
    _, admin_csr = build_csr("apps", "admin")
    with pytest.raises(ControlPlaneError, match="403"):
        client.sign(csr_pem=admin_csr, namespace="apps", pod="sleep-a", service_account="admin")
    del sleep


def test_syncz_versions_and_stale_config_when_istiod_dies(lab: MeshLab) -> None:
    service_ip = lab.service("httpbin", "apps", {"app": "httpbin"})
    lab.add_pod("httpbin-a", {"app": "httpbin"})
    client = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    doomed = lab.add_pod("old-a", {"app": "old"}, ports=(81,))
    with urllib.request.urlopen(f"http://{lab.istiod_ctx.pod_ip}:15014/debug/syncz", timeout=10) as response:
        rows = json.loads(response.read())
    assert {(r["proxy"], r["proxy_type"], r["proxy_version"], r["istiod_version"]) for r in rows} == {
        ("httpbin-a.apps", "sidecar", VERSION, VERSION),
        ("sleep-a.apps", "sidecar", VERSION, VERSION),
        ("old-a.apps", "sidecar", VERSION, VERSION),
    }
    # a deleted pod's proxy drops out at once, even while its last long poll is still open
    lab.store.remove(doomed.obj)
    with urllib.request.urlopen(f"http://{lab.istiod_ctx.pod_ip}:15014/debug/syncz", timeout=10) as response:
        assert sorted(r["proxy"] for r in json.loads(response.read())) == ["httpbin-a.apps", "sleep-a.apps"]
    with urllib.request.urlopen(f"http://{lab.istiod_ctx.pod_ip}:15014/metrics", timeout=10) as response:
        assert f'istio_build{{component="pilot",tag="{VERSION}"}} 1' in response.read().decode()
    lab.istiod.stop()
    # the data plane keeps working with the config it has
    assert mesh_get(client, service_ip, 8000).status == 200
    assert client.proxy.ready
    lab.istiod.start()  # so the fixture can stop it again


def test_certificate_rotation_before_expiry() -> None:
    mesh = MeshLab(workload_ttl=datetime.timedelta(seconds=4))
    try:
        sleep = mesh.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
        first = sleep.proxy.tls.certificate
        assert first is not None and first.not_after - first.not_before <= datetime.timedelta(seconds=5)
        with sleep.proxy._config_changed:
            rotated = sleep.proxy._config_changed.wait_for(
                lambda: sleep.proxy.tls.certificate is not first, timeout=10
            )
        assert rotated
        second = sleep.proxy.tls.certificate
        assert second is not None and second.not_after > first.not_after
        assert second.not_after > datetime.datetime.now(datetime.UTC)
    finally:
        mesh.close()


def test_pilot_agent_exec_and_admin(lab: MeshLab) -> None:
    sleep = lab.add_pod("sleep-a", {"app": "sleep"}, ports=(80,))
    commands = sleep.proxy.exec_commands()
    out, err = BytesIO(), BytesIO()
    assert commands["pilot-agent"](["pilot-agent", "request", "GET", "server_info"], None, out, err) == 0
    info = json.loads(out.getvalue())
    assert VERSION in info["version"] and info["state"] == "LIVE"
    out = BytesIO()
    assert commands["pilot-agent"](["pilot-agent", "request", "GET", "stats/prometheus"], None, out, err) == 0
    assert b"envoy_server_live 1" in out.getvalue()
    out = BytesIO()
    assert commands["pilot-agent"](["pilot-agent", "version", "--short"], None, out, err) == 0
    assert out.getvalue().decode().strip() == VERSION
    assert commands["pilot-agent"](["pilot-agent", "request", "GET", "nope"], None, BytesIO(), err) == 1
    with urllib.request.urlopen(f"http://{sleep.local}:15000/server_info", timeout=10) as response:
        assert json.loads(response.read())["node"]["metadata"]["ISTIO_VERSION"] == VERSION
    with urllib.request.urlopen(f"http://{sleep.ip}:15021/healthz/ready", timeout=10) as response:
        assert response.status == 200


def test_register_mesh_workloads_patterns() -> None:
    import fnmatch

    registered: dict[str, Any] = {}
    register_mesh_workloads(registered.__setitem__)
    for repo in (
        "docker.io/istio/proxyv2",
        "gcr.io/istio-release/proxyv2",
        "registry.istio.io/release/proxyv2",
    ):
        assert any(fnmatch.fnmatchcase(repo, p) for p in registered if p.endswith("proxyv2")), repo
    for repo in ("docker.io/istio/pilot", "registry.istio.io/release/pilot"):
        assert any(fnmatch.fnmatchcase(repo, p) for p in registered if p.endswith("pilot")), repo
    assert not any(fnmatch.fnmatchcase("docker.io/library/nginx", p) for p in registered)
