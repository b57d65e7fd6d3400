"""Real kubectl 1.32 against the lab API server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from lab_api_support import Lab

from pytest_meshcheck.lab.store import GVR

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: details
  labels: {app: details}
spec:
  ports:
  - {port: 9080, name: http}
  selector: {app: details}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookinfo-details
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: details-v1
  labels: {app: details, version: v1}
spec:
  replicas: 1
  selector:
    matchLabels: {app: details, version: v1}
  template:
    metadata:
      labels: {app: details, version: v1}
    spec:
      serviceAccountName: bookinfo-details
      containers:
      - name: details
        image: docker.io/istio/examples-bookinfo-details-v1:1.20.2
        ports:
        - containerPort: 9080
        env:
        - {name: MODE, value: "IMAGE"}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
---
apiVersion: example.com/v1
kind: Gadget
metadata:
  name: g1
spec:
  size: 3
"""


def test_version_and_api_resources(lab: Lab) -> None:
    version = json.loads(lab.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.32")
    resources = lab.kubectl("api-resources").stdout
    for expected in (
        "deployments",
        "customresourcedefinitions",
        "mutatingwebhookconfigurations",
        "leases",
        "endpointslices",
    ):
        assert expected in resources


def test_apply_create_reapply_and_change(lab: Lab, ns: str) -> None:
    crd_only = MANIFEST.split("---\n")[3]
    lab.kubectl("apply", "-f", "-", input=crd_only)
    lab.kubectl("wait", "--for=condition=established", "crd/gadgets.example.com", "--timeout=20s")
    first = lab.kubectl("-n", ns, "apply", "-f", "-", input=MANIFEST).stdout
    assert "service/details created" in first
    assert "deployment.apps/details-v1 created" in first
    assert "gadget.example.com/g1 created" in first
    again = lab.kubectl("-n", ns, "apply", "-f", "-", input=MANIFEST).stdout
    assert "deployment.apps/details-v1 unchanged" in again and "gadget.example.com/g1 unchanged" in again
    changed = MANIFEST.replace('value: "IMAGE"', 'value: "CHANGED"').replace("size: 3", "size: 4")
    third = lab.kubectl("-n", ns, "apply", "-f", "-", input=changed).stdout
    assert "deployment.apps/details-v1 configured" in third and "gadget.example.com/g1 configured" in third
    assert "service/details unchanged" in third
    env = lab.kubectl(
        "-n",
        ns,
        "get",
        "deploy",
        "details-v1",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[0].value}",
    )
    assert env.stdout == "CHANGED"
    ports = lab.kubectl(
        "-n",
        ns,
        "get",
        "deploy",
        "details-v1",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}",
    )
    assert ports.stdout == "9080"
    table = lab.kubectl("-n", ns, "get", "gd").stdout
    assert table.split("\n")[0].split() == ["NAME", "AGE", "SIZE"] and "g1" in table and "4" in table
    assert "gadgets" in lab.kubectl("api-resources", "--api-group=example.com").stdout


def test_strict_field_validation_rejects_unknown_fields(lab: Lab, ns: str) -> None:
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatta: {a: b}\n"
    result = lab.kubectl("-n", ns, "apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0 and 'unknown field "datta"' in result.stderr
    warned = lab.kubectl("-n", ns, "apply", "--validate=warn", "-f", "-", input=bad)
    assert "configmap/c created" in warned.stdout and 'Warning: unknown field "datta"' in warned.stderr


def test_create_commands_send_protobuf_and_work(lab: Lab) -> None:
    ns = f"pb-{int(time.time() * 1000) % 100000}"
    lab.kubectl("create", "namespace", ns)
    lab.kubectl("-n", ns, "create", "configmap", "c", "--from-literal=a=b")
    lab.kubectl("-n", ns, "create", "deployment", "web", "--image=nginx:1", "--replicas=2", "--port=80")
    lab.kubectl("-n", ns, "create", "serviceaccount", "bot")
    token = lab.kubectl("-n", ns, "create", "token", "bot").stdout.strip()
    assert len(token) > 20
    deployment = json.loads(lab.kubectl("-n", ns, "get", "deploy", "web", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    assert lab.kubectl("-n", ns, "get", "cm", "c", "-o", "jsonpath={.data.a}").stdout == "b"
    assert lab.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"


def test_get_table_label_and_jsonpath(lab: Lab, ns: str) -> None:
    pod = {
        "metadata": {"name": "p1", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
    }
    lab.store.create(GVR.core("pods"), pod, namespace=ns)
    status = lab.store.get(GVR.core("pods"), ns, "p1")
    status["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
            {
                "name": "b",
                "ready": False,
                "restartCount": 1,
                "state": {"waiting": {"reason": "ImagePullBackOff"}},
            },
        ],
    }
    lab.store.update(GVR.core("pods"), status, subresource="status")
    lines = lab.kubectl("-n", ns, "get", "pods").stdout.strip().split("\n")
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["p1", "1/2", "ImagePullBackOff", "3"]
    lab.kubectl("-n", ns, "label", "pod", "p1", "tier=web")
    assert (
        lab.kubectl(
            "-n", ns, "get", "pods", "-l", "tier=web", "-o", "jsonpath={.items[*].metadata.name}"
        ).stdout
        == "p1"
    )
    assert (
        lab.kubectl(
            "-n", ns, "get", "pods", "--field-selector=status.phase=Running", "-o", "name"
        ).stdout.strip()
        == "pod/p1"
    )
    assert (
        lab.kubectl(
            "-n", ns, "get", "pods", "--field-selector=status.phase=Pending", "-o", "name"
        ).stdout.strip()
        == ""
    )
    assert "tier=web" in lab.kubectl("-n", ns, "get", "pods", "--show-labels").stdout


def test_patch_flavours_and_scale(lab: Lab, ns: str) -> None:
    lab.kubectl("-n", ns, "apply", "-f", "-", input=MANIFEST.split("---\n")[2])
    lab.kubectl("-n", ns, "scale", "deploy", "details-v1", "--replicas=3")
    lab.kubectl(
        "-n",
        ns,
        "patch",
        "deploy",
        "details-v1",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/j","value":"1"}]',
    )
    lab.kubectl(
        "-n", ns, "patch", "deploy", "details-v1", "--type=merge", "-p", '{"metadata":{"labels":{"m":"2"}}}'
    )
    lab.kubectl(
        "-n", ns, "patch", "deploy", "details-v1", "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"details","image":"img:2"}]}}}}',
    )  # fmt: skip
    lab.kubectl("-n", ns, "set", "image", "deploy/details-v1", "details=img:3")
    obj = json.loads(lab.kubectl("-n", ns, "get", "deploy", "details-v1", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["labels"]["j"] == "1" and obj["metadata"]["labels"]["m"] == "2"
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "img:3" and container["ports"] == [
        {"containerPort": 9080, "protocol": "TCP"}
    ]
    applied = lab.kubectl(
        "-n", ns, "apply", "--server-side", "-f", "-", input=MANIFEST.split("---\n")[2], check=False
    )
    assert applied.returncode != 0 and "conflict" in applied.stderr.lower()
    forced = lab.kubectl(
        "-n", ns, "apply", "--server-side", "--force-conflicts", "-f", "-", input=MANIFEST.split("---\n")[2]
    )
    assert "serverside-applied" in forced.stdout
    assert (
        lab.kubectl("-n", ns, "get", "deploy", "details-v1", "-o", "jsonpath={.spec.replicas}").stdout == "1"
    )


def test_get_watch_bounded_by_request_timeout(lab: Lab, ns: str) -> None:
    lab.store.create(GVR.core("configmaps"), {"metadata": {"name": "first"}}, namespace=ns)

    def change_later() -> None:
        lab.wait_until(lambda: bool(lab.store._watches), message="kubectl's watch")
        lab.store.create(GVR.core("configmaps"), {"metadata": {"name": "second"}}, namespace=ns)

    writer = threading.Thread(target=change_later)
    writer.start()
    result = lab.kubectl("-n", ns, "get", "cm", "-w", "--request-timeout=3s", timeout=30, check=False)
    writer.join(10)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.strip().split("\n")[1:]]
    assert names == ["first", "second"]


def test_delete_namespace_wait_removes_contents(lab: Lab) -> None:
    ns = lab.namespace("doomed")
    lab.kubectl(
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=MANIFEST.split("---\n", maxsplit=1)[0] + "---\n" + MANIFEST.split("---\n")[1],
    )
    result = lab.kubectl("delete", "namespace", ns, "--wait", "--timeout=30s", timeout=40)
    assert f'namespace "{ns}" deleted' in result.stdout
    assert lab.kubectl("get", "namespace", ns, check=False).returncode != 0
    leftovers = [o for _k, o in lab.store.all_objects() if o["metadata"].get("namespace") == ns]
    assert leftovers == []


def test_delete_with_cascade_orphan_keeps_dependents(lab: Lab, ns: str) -> None:
    owner = lab.store.create(GVR.core("configmaps"), {"metadata": {"name": "owner"}}, namespace=ns)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    lab.store.create(
        GVR.core("configmaps"), {"metadata": {"name": "child", "ownerReferences": [ref]}}, namespace=ns
    )
    lab.kubectl("-n", ns, "delete", "cm", "owner", "--cascade=orphan", "--wait", "--timeout=20s")
    child = lab.store.get(GVR.core("configmaps"), ns, "child")
    assert not child["metadata"].get("ownerReferences")


def test_kubectl_delete_pod_grace_period(lab: Lab, ns: str) -> None:
    spec = {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}
    lab.store.create(GVR.core("pods"), {"metadata": {"name": "slow"}, "spec": spec}, namespace=ns)
    lab.kubectl("-n", ns, "delete", "pod", "slow", "--wait=false")
    assert "Terminating" in lab.kubectl("-n", ns, "get", "pod", "slow").stdout
    lab.kubectl("-n", ns, "delete", "pod", "slow", "--grace-period=0", "--force")
    assert lab.kubectl("-n", ns, "get", "pod", "slow", check=False).returncode != 0


def test_project_manifests_apply_and_reapply_unchanged(lab: Lab, ns: str) -> None:
    fixtures = Path(__file__).resolve().parents[3] / "fixtures"
    lab.kubectl("apply", "-f", str(fixtures / "istio" / "crds.yaml"))
    lab.kubectl("wait", "--for=condition=established", "crd/gateways.networking.istio.io", "--timeout=20s")
    for manifest in ("bookinfo.yaml", "bookinfo-gateway.yaml"):
        path = str(fixtures / "bookinfo" / manifest)
        first = lab.kubectl("-n", ns, "apply", "-f", path).stdout.splitlines()
        assert first and all(line.endswith(" created") for line in first)
        again = lab.kubectl("-n", ns, "apply", "-f", path).stdout.splitlines()
        assert again and all(line.endswith(" unchanged") for line in again)
    assert "bookinfo" in lab.kubectl("-n", ns, "get", "vs", "-o", "name").stdout


def test_strict_validation_knows_nested_built_in_fields(lab: Lab, ns: str) -> None:
    deployment = MANIFEST.split("---\n")[2]
    typo = deployment.replace("        ports:\n", "        imagePullPolicyy: Always\n        ports:\n")
    rejected = lab.kubectl("-n", ns, "apply", "-f", "-", input=typo, check=False)
    assert rejected.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in rejected.stderr
    inline = deployment.replace(
        "      containers:\n",
        "      volumes:\n      - name: tmp\n        emptyDir: {}\n      - name: cfg\n"
        "        configMap: {name: c, optional: true}\n      containers:\n",
    )
    assert "created" in lab.kubectl("-n", ns, "apply", "-f", "-", input=inline).stdout


def test_kubectl_certificate_approve(lab: Lab) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
        .sign(key, hashes.SHA256())
    )
    pem = base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()
    csr = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "alice"},
        "spec": {
            "request": pem,
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        },
    }
    lab.kubectl("apply", "-f", "-", input=json.dumps(csr))
    assert "approved" in lab.kubectl("certificate", "approve", "alice").stdout
    conditions = lab.kubectl("get", "csr", "alice", "-o", "jsonpath={.status.conditions[0].type}").stdout
    assert conditions == "Approved"
