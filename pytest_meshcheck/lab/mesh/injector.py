"""Sidecar injection as istiod's webhook performs it, as pure functions.

Two questions, answered the way Istio answers them:
- *Should this istiod inject this pod?* Upstream splits the answer between the webhook's selectors
  (namespace ``istio-injection`` / ``istio.io/rev`` labels, pod ``istio.io/rev`` and
  ``sidecar.istio.io/inject`` labels) and the injector's own policy (host network, ignored
  namespaces, the ``sidecar.istio.io/inject`` annotation). ``injection_decision`` evaluates both,
  so the result is right whether or not the API server evaluated the selectors first.
- *What does the injected pod look like?* ``inject_patch`` returns the RFC 6902 JSONPatch the
  webhook answers with: ``istio-init`` and ``istio-proxy`` (image ``proxyv2`` of the istiod's
  version), the volumes they mount, the status/prometheus/default-container annotations and the
  ``security.istio.io/tlsMode`` / canonical service labels. With ``ENABLE_NATIVE_SIDECARS`` the
  proxy becomes an init container with ``restartPolicy: Always`` (Kubernetes native sidecars).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

INJECT_KEY = "sidecar.istio.io/inject"
STATUS_ANNOTATION = "sidecar.istio.io/status"
NAMESPACE_INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
#: Label of a revision tag's webhook configuration, naming the tag (its ``istio.io/rev`` names the
#: revision the tag points at).
TAG_LABEL = "istio.io/tag"
TLS_MODE_LABEL = "security.istio.io/tlsMode"
CANONICAL_NAME_LABEL = "service.istio.io/canonical-name"
CANONICAL_REVISION_LABEL = "service.istio.io/canonical-revision"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
DEFAULT_LOGS_ANNOTATION = "kubectl.kubernetes.io/default-logs-container"
#: Namespaces Istio never injects into, whatever their labels say.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public"})

PROXY_USER = 1337
STATUS_PORT = 15020
HEALTH_PORT = 15021
ENVOY_PROM_PORT = 15090
INBOUND_CAPTURE_PORT = 15006
OUTBOUND_CAPTURE_PORT = 15001

#: Volumes of the default sidecar template, in upstream's order.
SIDECAR_VOLUMES = (
    "workload-socket",
    "credential-socket",
    "workload-certs",
    "istio-envoy",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
)


def is_default_revision(revision: str) -> bool:
    return revision in ("", "default")


def revision_name(revision: str) -> str:
    """How a revision is written in labels and the status annotation ("default" for none)."""
    return "default" if is_default_revision(revision) else revision


def istiod_service_name(revision: str) -> str:
    return "istiod" if is_default_revision(revision) else f"istiod-{revision}"


def webhook_configuration_name(revision: str) -> str:
    return "istio-sidecar-injector" if is_default_revision(revision) else f"istio-sidecar-injector-{revision}"


def skewed_tag(tag: str, minors_behind: int = 2) -> str:
    """``1.24.3`` -> ``1.22.0``: the release two minors behind (the ``proxy-skew`` fault)."""
    parts = tag.split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return tag
    minor = max(0, int(parts[1]) - minors_behind)
    return f"{parts[0]}.{minor}.0"


@dataclass(frozen=True, kw_only=True)
class InjectionConfig:
    """What the injector needs to know about the istiod doing the injecting."""

    hub: str = "docker.io/istio"
    tag: str = "1.24.2"
    proxy_image: str = "proxyv2"
    revision: str = ""
    #: Revision tags pointing at this istiod (``istio.io/tag`` on a tag's webhook configuration):
    #: a namespace labelled ``istio.io/rev: <tag>`` is injected by it.
    tags: frozenset[str] = frozenset()
    #: ``policy`` of the injector ConfigMap: ``enabled`` injects unless opted out; ``disabled`` only
    #: when the pod asks with ``sidecar.istio.io/inject: "true"``.
    policy: str = "enabled"
    native_sidecars: bool = False
    istio_namespace: str = "istio-system"
    trust_domain: str = "cluster.local"
    cluster_id: str = "Kubernetes"
    mesh_id: str = "cluster.local"
    hold_application_until_proxy_starts: bool = False
    rewrite_app_http_probe: bool = True
    image_pull_policy: str = "IfNotPresent"

    @property
    def discovery_address(self) -> str:
        return f"{istiod_service_name(self.revision)}.{self.istio_namespace}.svc:15012"

    def proxy_image_ref(self, tag: str | None = None) -> str:
        return f"{self.hub}/{self.proxy_image}:{tag or self.tag}"

    @classmethod
    def from_configmap(
        cls, data: Mapping[str, str], *, defaults: InjectionConfig | None = None, **overrides: Any
    ) -> InjectionConfig:
        """Read the ``istio-sidecar-injector`` ConfigMap: ``config`` (YAML, ``policy``) and ``values``
        (JSON, ``global.hub``/``global.tag``/``global.proxy.image``/``revision``/``global.meshID``...)."""
        fields: dict[str, Any] = {}
        config_text = data.get("config", "")
        if config_text:
            loaded = yaml.safe_load(config_text) or {}
            if isinstance(loaded, dict) and loaded.get("policy") in ("enabled", "disabled"):
                fields["policy"] = loaded["policy"]
        values_text = data.get("values", "")
        if values_text:
            values = json.loads(values_text)
            glob = values.get("global", {}) or {}
            if glob.get("hub"):
                fields["hub"] = str(glob["hub"])
            if glob.get("tag"):
                fields["tag"] = str(glob["tag"])
            proxy = glob.get("proxy", {}) or {}
            if proxy.get("image"):
                fields["proxy_image"] = str(proxy["image"])
            if "holdApplicationUntilProxyStarts" in proxy:
                fields["hold_application_until_proxy_starts"] = bool(proxy["holdApplicationUntilProxyStarts"])
            if glob.get("istioNamespace"):
                fields["istio_namespace"] = str(glob["istioNamespace"])
            if glob.get("meshID"):
                fields["mesh_id"] = str(glob["meshID"])
            multi = glob.get("multiCluster", {}) or {}
            if multi.get("clusterName"):
                fields["cluster_id"] = str(multi["clusterName"])
            if values.get("revision"):
                fields["revision"] = str(values["revision"])
            probe = (values.get("sidecarInjectorWebhook", {}) or {}).get("rewriteAppHTTPProbe")
            if probe is not None:
                fields["rewrite_app_http_probe"] = bool(probe)
        fields.update(overrides)
        return replace(defaults or cls(), **fields)


def _truthy(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "y", "yes", "enabled", "1"):
        return True
    if lowered in ("false", "n", "no", "disabled", "0"):
        return False
    return None


@dataclass(frozen=True)
class InjectionDecision:
    inject: bool
    reason: str


def wanted_revision(pod: Mapping[str, Any], namespace_labels: Mapping[str, str]) -> str | None:
    """The revision a pod asks to be injected by, as the upstream webhooks' selectors decide it,
    or None when nothing asks for injection. ``istio-injection`` wins over ``istio.io/rev``."""
    meta = pod.get("metadata", {}) or {}
    labels: Mapping[str, str] = meta.get("labels", {}) or {}
    ns_injection = namespace_labels.get(NAMESPACE_INJECTION_LABEL)
    if ns_injection == "enabled":
        return "default"
    if ns_injection is not None:
        return None
    ns_rev = namespace_labels.get(REVISION_LABEL)
    if ns_rev is not None:
        return ns_rev
    if REVISION_LABEL in labels:
        return labels[REVISION_LABEL]
    if labels.get(INJECT_KEY) == "true":
        return "default"
    return None


def injection_decision(
    pod: Mapping[str, Any], namespace: str, namespace_labels: Mapping[str, str], config: InjectionConfig
) -> InjectionDecision:
    meta = pod.get("metadata", {}) or {}
    spec = pod.get("spec", {}) or {}
    labels: Mapping[str, str] = meta.get("labels", {}) or {}
    annotations: Mapping[str, str] = meta.get("annotations", {}) or {}
    if STATUS_ANNOTATION in annotations:
        return InjectionDecision(False, "already injected")
    if spec.get("hostNetwork"):
        return InjectionDecision(False, "host network")
    if namespace in IGNORED_NAMESPACES:
        return InjectionDecision(False, f"namespace {namespace} is ignored")
    revision = wanted_revision(pod, namespace_labels)
    if revision is None:
        return InjectionDecision(False, "no injection label on namespace or pod")
    if revision_name(revision) not in {revision_name(config.revision), *config.tags}:
        return InjectionDecision(False, f"pod asks for revision {revision_name(revision)}")
    # The label takes precedence over the (deprecated) annotation, as upstream.
    explicit = _truthy(labels.get(INJECT_KEY))
    if explicit is None:
        explicit = _truthy(annotations.get(INJECT_KEY))
    if explicit is False:
        return InjectionDecision(False, f"{INJECT_KEY} is false")
    if explicit is None and config.policy == "disabled":
        return InjectionDecision(False, "policy disabled and pod does not opt in")
    return InjectionDecision(True, "injected")


def canonical_name(labels: Mapping[str, str], workload_name: str) -> str:
    for key in (CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"):
        if labels.get(key):
            return labels[key]
    return workload_name


def canonical_revision(labels: Mapping[str, str]) -> str:
    for key in (CANONICAL_REVISION_LABEL, "app.kubernetes.io/version", "version"):
        if labels.get(key):
            return labels[key]
    return "latest"


def pod_workload_name(pod: Mapping[str, Any]) -> str:
    """The owning workload's name as Istio derives it: a ReplicaSet's name without its
    pod-template-hash is the Deployment; a bare pod is its own workload."""
    meta = pod.get("metadata", {}) or {}
    labels: Mapping[str, str] = meta.get("labels", {}) or {}
    for owner in meta.get("ownerReferences", []) or []:
        if not owner.get("controller", True):
            continue
        name = str(owner.get("name", ""))
        if owner.get("kind") == "ReplicaSet":
            pod_hash = labels.get("pod-template-hash", "")
            if pod_hash and name.endswith("-" + pod_hash):
                return name[: -len(pod_hash) - 1]
        if owner.get("kind") == "Job":
            return name
        return name
    name = str(meta.get("name") or "")
    if not name and meta.get("generateName"):
        generated = str(meta["generateName"]).rstrip("-")
        pod_hash = labels.get("pod-template-hash", "")
        if pod_hash and generated.endswith("-" + pod_hash):
            generated = generated[: -len(pod_hash) - 1]
        return generated
    return name


def _container_ports(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for container in containers:
        for port in container.get("ports", []) or []:
            entry = {k: port[k] for k in ("name", "containerPort", "protocol") if k in port}
            ports.append(entry)
    return ports


def _init_container(config: InjectionConfig, image: str) -> dict[str, Any]:
    return {
        "name": "istio-init",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "args": [
            "istio-iptables",
            "-p",
            str(OUTBOUND_CAPTURE_PORT),
            "-z",
            str(INBOUND_CAPTURE_PORT),
            "-u",
            str(PROXY_USER),
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            f"{ENVOY_PROM_PORT},{HEALTH_PORT},{STATUS_PORT}",
            "--log_output_level=default:info",
        ],
        "resources": {
            "limits": {"cpu": "2", "memory": "1Gi"},
            "requests": {"cpu": "10m", "memory": "40Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def _proxy_container(
    pod: Mapping[str, Any],
    config: InjectionConfig,
    image: str,
    app_containers: list[dict[str, Any]],
    probers: dict[str, Any],
) -> dict[str, Any]:
    meta = pod.get("metadata", {}) or {}
    workload = pod_workload_name(pod)
    namespace = str(meta.get("namespace", ""))
    owner = ""
    for ref in meta.get("ownerReferences", []) or []:
        if ref.get("kind") == "ReplicaSet":
            owner = f"kubernetes://apis/apps/v1/namespaces/{namespace}/deployments/{workload}"
    env: list[dict[str, Any]] = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": config.discovery_address},
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("INSTANCE_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        _field_env("HOST_IP", "status.hostIP"),
        {
            "name": "ISTIO_CPU_LIMIT",
            "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}},
        },
        {"name": "PROXY_CONFIG", "value": json.dumps({"discoveryAddress": config.discovery_address})},
        {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(_container_ports(app_containers))},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(c["name"] for c in app_containers)},
        {
            "name": "GOMEMLIMIT",
            "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.memory"}},
        },
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
        {"name": "ISTIO_META_CLUSTER_ID", "value": config.cluster_id},
        _field_env("ISTIO_META_NODE_NAME", "spec.nodeName"),
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
        {"name": "ISTIO_META_OWNER", "value": owner},
        {"name": "ISTIO_META_MESH_ID", "value": config.mesh_id},
        {"name": "TRUST_DOMAIN", "value": config.trust_domain},
    ]
    if probers:
        env.append({"name": "ISTIO_KUBE_APP_PROBERS", "value": json.dumps(probers, sort_keys=True)})
    if config.native_sidecars:
        env.append({"name": "ENABLE_NATIVE_SIDECARS", "value": "true"})
    container: dict[str, Any] = {
        "name": "istio-proxy",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "args": [
            "proxy",
            "sidecar",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local",
            "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error",
            "--log_output_level=default:info",
        ],
        "env": env,
        "ports": [{"containerPort": ENVOY_PROM_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "failureThreshold": 4,
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT, "scheme": "HTTP"},
            "periodSeconds": 15,
            "successThreshold": 1,
            "timeoutSeconds": 3,
        },
        "startupProbe": {
            "failureThreshold": 600,
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT, "scheme": "HTTP"},
            "periodSeconds": 1,
            "successThreshold": 1,
            "timeoutSeconds": 3,
        },
        "resources": {
            "limits": {"cpu": "2", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_USER,
            "runAsNonRoot": True,
            "runAsUser": PROXY_USER,
        },
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if config.native_sidecars:
        container["restartPolicy"] = "Always"
    return container


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "workload-socket", "emptyDir": {}},
        {"name": "credential-socket", "emptyDir": {}},
        {"name": "workload-certs", "emptyDir": {}},
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {
            "name": "istio-podinfo",
            "downwardAPI": {
                "defaultMode": 420,
                "items": [
                    {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}, "path": "labels"},
                    {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"},
                        "path": "annotations",
                    },
                ],
            },
        },
        {
            "name": "istio-token",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }
                    }
                ],
            },
        },
        {"name": "istiod-ca-cert", "configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}},
    ]


def _rewrite_probes(app_containers: list[dict[str, Any]]) -> dict[str, Any]:
    """Point app HTTP/TCP probes at pilot-agent's status port, as ``rewriteAppHTTPProbe`` does: the
    kubelet cannot reach the app port directly once STRICT mTLS owns it. Returns the prober table
    pilot-agent reads from ``ISTIO_KUBE_APP_PROBERS``."""
    probers: dict[str, Any] = {}
    for container in app_containers:
        for kind, suffix in (
            ("readinessProbe", "readyz"),
            ("livenessProbe", "livez"),
            ("startupProbe", "startupz"),
        ):
            probe = container.get(kind)
            if not isinstance(probe, dict):
                continue
            path = f"/app-health/{container['name']}/{suffix}"
            if "httpGet" in probe:
                original = dict(probe["httpGet"])
                probers[path] = {"httpGet": original, "timeoutSeconds": probe.get("timeoutSeconds", 1)}
                probe["httpGet"] = {"path": path, "port": STATUS_PORT, "scheme": "HTTP"}
            elif "tcpSocket" in probe:
                probers[path] = {
                    "tcpSocket": dict(probe["tcpSocket"]),
                    "timeoutSeconds": probe.get("timeoutSeconds", 1),
                }
                del probe["tcpSocket"]
                probe["httpGet"] = {"path": path, "port": STATUS_PORT, "scheme": "HTTP"}
    return probers


def injected_pod(
    pod: Mapping[str, Any], config: InjectionConfig, *, faults: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The pod as the webhook would have it after injection."""
    result: dict[str, Any] = copy.deepcopy(dict(pod))
    meta = result.setdefault("metadata", {})
    spec = result.setdefault("spec", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers: list[dict[str, Any]] = spec.setdefault("containers", [])
    init_containers: list[dict[str, Any]] = spec.setdefault("initContainers", [])
    tag = skewed_tag(config.tag) if "proxy-skew" in faults else config.tag
    image = config.proxy_image_ref(tag)
    probers = _rewrite_probes(app_containers) if config.rewrite_app_http_probe else {}
    proxy = _proxy_container(pod, config, image, app_containers, probers)
    first_app = app_containers[0]["name"] if app_containers else ""
    init_containers.insert(0, _init_container(config, image))
    if config.native_sidecars:
        init_containers.insert(1, proxy)
    elif config.hold_application_until_proxy_starts:
        app_containers.insert(0, proxy)
    else:
        app_containers.append(proxy)
    existing_volumes = {v.get("name") for v in spec.get("volumes", []) or []}
    spec["volumes"] = list(spec.get("volumes", []) or []) + [
        v for v in _volumes() if v["name"] not in existing_volumes
    ]
    workload = pod_workload_name(pod)
    labels[TLS_MODE_LABEL] = "istio"
    labels.setdefault(CANONICAL_NAME_LABEL, canonical_name(labels, workload))
    labels.setdefault(CANONICAL_REVISION_LABEL, canonical_revision(labels))
    labels.setdefault(REVISION_LABEL, revision_name(config.revision))
    status = {
        "initContainers": ["istio-init", "istio-proxy"] if config.native_sidecars else ["istio-init"],
        "containers": None if config.native_sidecars else ["istio-proxy"],
        "volumes": list(SIDECAR_VOLUMES),
        "imagePullSecrets": None,
        "revision": revision_name(config.revision),
    }
    annotations[STATUS_ANNOTATION] = json.dumps(status, separators=(",", ":"))
    if annotations.get("prometheus.io/scrape") is None:
        annotations["prometheus.io/scrape"] = "true"
        annotations["prometheus.io/port"] = str(STATUS_PORT)
        annotations["prometheus.io/path"] = "/stats/prometheus"
    if first_app:
        annotations.setdefault(DEFAULT_CONTAINER_ANNOTATION, first_app)
        annotations.setdefault(DEFAULT_LOGS_ANNOTATION, first_app)
    return result


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(original: Mapping[str, Any], mutated: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSONPatch turning ``original`` into ``mutated`` for the parts injection touches: whole
    container/volume lists and single label/annotation keys (so concurrent label edits survive)."""
    ops: list[dict[str, Any]] = []
    for section, key in (("spec", "initContainers"), ("spec", "containers"), ("spec", "volumes")):
        before = (original.get(section, {}) or {}).get(key)
        after = mutated.get(section, {}).get(key)
        if after is not None and before != after:
            ops.append(
                {"op": "add" if before is None else "replace", "path": f"/{section}/{key}", "value": after}
            )
    for field_name in ("labels", "annotations"):
        before_map = (original.get("metadata", {}) or {}).get(field_name)
        after_map = mutated.get("metadata", {}).get(field_name, {})
        if before_map is None:
            if after_map:
                ops.append({"op": "add", "path": f"/metadata/{field_name}", "value": after_map})
            continue
        for name, value in after_map.items():
            if before_map.get(name) != value:
                op = "replace" if name in before_map else "add"
                ops.append({"op": op, "path": f"/metadata/{field_name}/{_escape(name)}", "value": value})
    return ops


def inject_patch(
    pod: Mapping[str, Any],
    namespace: str,
    namespace_labels: Mapping[str, str],
    config: InjectionConfig,
    *,
    faults: set[str] | frozenset[str] = frozenset(),
) -> tuple[InjectionDecision, list[dict[str, Any]]]:
    """The webhook's answer for one pod: the decision and the JSONPatch (empty when not injecting,
    and always empty under the ``injection-off`` fault)."""
    if "injection-off" in faults:
        return InjectionDecision(False, "injection-off fault"), []
    decision = injection_decision(pod, namespace, namespace_labels, config)
    if not decision.inject:
        return decision, []
    return decision, json_patch(pod, injected_pod(pod, config, faults=faults))
