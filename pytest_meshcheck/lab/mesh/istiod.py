"""The istiod container (image ``pilot``): CA, sidecar injection webhook and config distribution.

Ports, as on a real istiod: 15010 (plaintext discovery; the lab's config/certificate API, see
discovery.py), 15012 (the same over TLS with istiod's serving certificate), 15014 (monitoring:
``/metrics``, ``/version``, ``/debug/syncz``), 15017 (the injection webhook over HTTPS), 8080
(``/ready``). The revision comes from ``REVISION``; native sidecars from ``ENABLE_NATIVE_SIDECARS``.

Everything istiod knows about the cluster comes from the lab's store, handed in as
``ctx.services["store"]``: it keeps its root in the ``istio-ca-secret`` Secret (so revisions and
restarts share one trust root), writes ``istio-ca-root-cert`` into each namespace, patches its
``caBundle`` into its MutatingWebhookConfiguration, reads the injector ConfigMap and watches the
objects the proxies' config is computed from.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.mesh.ca import MeshCA
from pytest_meshcheck.lab.mesh.config import (
    CONFIG_KINDS,
    GATEWAY_SECRETS_KIND,
    ROOT_NAMESPACE,
    parse_duration,
)
from pytest_meshcheck.lab.mesh.discovery import CERTIFICATE_PATH, CONFIG_PATH, XDS_PLAINTEXT_PORT
from pytest_meshcheck.lab.mesh.injector import (
    REVISION_LABEL,
    TAG_LABEL,
    InjectionConfig,
    inject_patch,
    is_default_revision,
    istiod_service_name,
    revision_name,
    webhook_configuration_name,
)
from pytest_meshcheck.lab.mesh.sources import (
    STORE_SERVICE,
    FaultSource,
    ObjectSource,
    ResourceRef,
    error_code,
    faults_of,
)
from pytest_meshcheck.lab.mesh.workload_tls import server_context_from_pem

XDS_TLS_PORT = 15012
MONITORING_PORT = 15014
WEBHOOK_PORT = 15017
READY_PORT = 8080
CA_SECRET = "istio-ca-secret"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
#: Namespaces istiod does not publish its root into.
SKIPPED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: A proxy that has not polled for this long is no longer listed as connected.
PROXY_STALE_SECONDS = 30.0

SECRETS = ResourceRef("", "v1", "secrets")
CONFIGMAPS = ResourceRef("", "v1", "configmaps")
NAMESPACES = ResourceRef("", "v1", "namespaces")
PODS = ResourceRef("", "v1", "pods")
WEBHOOKS = ResourceRef("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
#: Object kinds whose changes change the proxies' config.
WATCHED_KINDS = {
    ("", "Pod"),
    ("", "Service"),
    ("", "Secret"),  # gateway credentials
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "Gateway"),
    ("security.istio.io", "PeerAuthentication"),
}


def _group_of(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Istiod:
    """One istiod replica."""

    def __init__(
        self,
        ctx: WorkloadContext,
        *,
        store: ObjectSource | None = None,
        faults: FaultSource | None = None,
        workload_ttl: datetime.timedelta | None = None,
    ) -> None:
        self.ctx = ctx
        self.store: ObjectSource | None = store or ctx.services.get(STORE_SERVICE)
        self.faults = faults or faults_of(ctx.services)
        revision = ctx.env.get("REVISION", "") or ""
        self.revision = "" if is_default_revision(revision) else revision
        self.version = ctx.image_tag or "unknown"
        self.namespace = ctx.namespace or ROOT_NAMESPACE
        self.native_sidecars = (ctx.env.get("ENABLE_NATIVE_SIDECARS", "") or "").lower() == "true"
        ttl_text = ctx.env.get("DEFAULT_WORKLOAD_CERT_TTL", "")
        ttl_seconds = parse_duration(ttl_text) if ttl_text else None
        self.workload_ttl = workload_ttl or (
            datetime.timedelta(seconds=ttl_seconds) if ttl_seconds else datetime.timedelta(hours=24)
        )
        self.ca: MeshCA | None = None
        self._generation = 1
        self._document: dict[str, Any] | None = None
        self._changed = threading.Condition()
        self._proxies: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._servers: list[HttpServer] = []
        self._threads: list[threading.Thread] = []
        self._watch: Any = None
        self._serving_key_path = ""
        self._ready = threading.Event()

    @property
    def generation(self) -> int:
        """The config generation proxies are (or will be) sent."""
        with self._changed:
            return self._generation

    def wait_for_generation(self, after: int, timeout: float) -> int:
        """Block until the generation moved past ``after`` (a watched change arrived)."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation > after, timeout=timeout)
            return self._generation

    # --- names ----------------------------------------------------------------------------------
    @property
    def service_name(self) -> str:
        return istiod_service_name(self.revision)

    @property
    def webhook_name(self) -> str:
        return webhook_configuration_name(self.revision)

    @property
    def injector_configmap(self) -> str:
        return "istio-sidecar-injector" if not self.revision else f"istio-sidecar-injector-{self.revision}"

    def serving_names(self) -> list[str]:
        names = []
        for service in dict.fromkeys([self.service_name, "istiod"]):
            names += [
                f"{service}.{self.namespace}.svc",
                f"{service}.{self.namespace}.svc.cluster.local",
                f"{service}.{self.namespace}",
                service,
            ]
        return names

    def _log(self, message: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.ctx.log.write(f"{stamp}\tinfo\t{message}")

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.ca = self._load_or_create_ca()
        key_pem, cert_pem = self.ca.issue_serving(self.serving_names())
        tls = server_context_from_pem(cert_pem, key_pem)
        api = self._api_routes()
        self._serve((self.ctx.bind_ip, XDS_PLAINTEXT_PORT), api, None)
        self._serve((self.ctx.bind_ip, XDS_TLS_PORT), api, tls)
        self._serve((self.ctx.bind_ip, WEBHOOK_PORT), {"/inject": self._inject}, tls)
        self._serve((self.ctx.bind_ip, MONITORING_PORT), self._monitoring_routes(), None)
        self._serve((self.ctx.bind_ip, READY_PORT), {"/ready": self._ready_route}, None)
        if self.store is not None:
            self._watch = self.store.watch(None)
            thread = threading.Thread(
                target=self._watch_loop, name=f"istiod-watch-{self.ctx.pod_name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        else:
            self._log("no object store in the workload's services: serving an empty mesh config")
            self._ready.set()
        self._log(f"istiod {self.version} revision {revision_name(self.revision)} serving")

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.close()
        with self._changed:
            self._changed.notify_all()
        for server in self._servers:
            server.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    # --- CA and its publication --------------------------------------------------------------------
    def _load_or_create_ca(self) -> MeshCA:
        if self.store is None:
            return MeshCA(workload_ttl=self.workload_ttl)
        try:
            secret = self.store.get(SECRETS, self.namespace, CA_SECRET)
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            return MeshCA.from_secret_data(data, workload_ttl=self.workload_ttl)
        except Exception as exc:
            if error_code(exc) != 404:
                raise
        ca = MeshCA(workload_ttl=self.workload_ttl)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "istio.io/ca-root",
            "metadata": {"name": CA_SECRET, "namespace": self.namespace},
            "data": {k: _b64(v) for k, v in ca.secret_data().items()},
        }
        try:
            self.store.create(SECRETS, secret, namespace=self.namespace)
        except Exception as exc:
            if error_code(exc) != 409:
                raise
            # another istiod (another revision) won the race: use its root
            existing = self.store.get(SECRETS, self.namespace, CA_SECRET)
            data = {k: base64.b64decode(v) for k, v in (existing.get("data") or {}).items()}
            return MeshCA.from_secret_data(data, workload_ttl=self.workload_ttl)
        return ca

    def _publish_root(self, namespace: str) -> None:
        if self.store is None or self.ca is None or namespace in SKIPPED_NAMESPACES:
            return
        data = self.ca.root_configmap_data()
        try:
            current = self.store.get(CONFIGMAPS, namespace, ROOT_CERT_CONFIGMAP)
        except Exception as exc:
            if error_code(exc) != 404:
                return
            configmap = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CERT_CONFIGMAP,
                    "namespace": namespace,
                    "labels": {"istio.io/config": "true"},
                },
                "data": data,
            }
            with contextlib.suppress(Exception):
                self.store.create(CONFIGMAPS, configmap, namespace=namespace)
            return
        if current.get("data") != data:
            current["data"] = data
            with contextlib.suppress(Exception):
                self.store.update(CONFIGMAPS, current)

    def _patch_webhook(self, webhook: Mapping[str, Any]) -> None:
        """Put the root into every webhook's ``clientConfig.caBundle`` of our configuration."""
        if self.store is None or self.ca is None:
            return
        bundle = _b64(self.ca.root_pem)
        obj = json.loads(json.dumps(webhook))
        changed = False
        for entry in obj.get("webhooks", []) or []:
            client = entry.setdefault("clientConfig", {})
            if client.get("caBundle") != bundle:
                client["caBundle"] = bundle
                changed = True
        if changed:
            with contextlib.suppress(Exception):
                self.store.update(WEBHOOKS, obj)

    # --- watching -------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        assert self.store is not None
        self._ready.set()
        while not self._stop.is_set():
            try:
                event = self._watch.next(timeout=1.0)
            except Exception as exc:
                self._log(f"watch failed: {exc}; re-listing")
                if self._stop.wait(0.5):
                    return
                self._watch = self.store.watch(None)
                self._bump()
                continue
            if event is None:
                if getattr(self._watch, "closed", False) and not self._stop.is_set():
                    self._watch = self.store.watch(None)
                    self._bump()
                continue
            obj = event.object
            kind = str(obj.get("kind", ""))
            meta = obj.get("metadata", {}) or {}
            if (_group_of(obj), kind) in WATCHED_KINDS:
                self._bump()
            elif kind == "Namespace" and event.type in ("ADDED", "MODIFIED"):
                self._publish_root(str(meta.get("name", "")))
            elif kind == "ConfigMap" and meta.get("name") == ROOT_CERT_CONFIGMAP and event.type == "DELETED":
                self._publish_root(str(meta.get("namespace", "")))
            elif (
                kind == "MutatingWebhookConfiguration"
                and self._serves_webhook(meta)
                and event.type in ("ADDED", "MODIFIED")
            ):
                self._patch_webhook(obj)

    def _serves_webhook(self, meta: Mapping[str, Any]) -> bool:
        """Our own injector configuration, or a revision tag's (``istio-revision-tag-<tag>``,
        labelled ``istio.io/tag`` and ``istio.io/rev: <our revision>``), whose caBundle istiod
        keeps current as upstream does."""
        if meta.get("name") == self.webhook_name:
            return True
        labels = meta.get("labels") or {}
        return TAG_LABEL in labels and labels.get(REVISION_LABEL) == revision_name(self.revision)

    def revision_tags(self) -> frozenset[str]:
        """The revision tags that currently point at this istiod."""
        if self.store is None:
            return frozenset()
        try:
            webhooks, _ = self.store.list(WEBHOOKS)
        except Exception:
            return frozenset()
        tags = set()
        for webhook in webhooks:
            labels = (webhook.get("metadata") or {}).get("labels") or {}
            if TAG_LABEL in labels and labels.get(REVISION_LABEL) == revision_name(self.revision):
                tags.add(str(labels[TAG_LABEL]))
        return frozenset(tags)

    def _bump(self) -> None:
        with self._changed:
            self._generation += 1
            self._document = None
            self._changed.notify_all()

    def config_document(self) -> dict[str, Any]:
        """The inputs of ``MeshConfig`` at the current generation (cached until the next change)."""
        with self._changed:
            if self._document is not None:
                return self._document
            generation = self._generation
        objects: dict[str, list[dict[str, Any]]] = {}
        for kind, addresses in CONFIG_KINDS.items():
            objects[kind] = self._list_any(addresses)
        document = {"version": generation, "rootNamespace": self.namespace, "objects": objects}
        with self._changed:
            if self._generation == generation:
                self._document = document
        return document

    def _list_any(self, addresses: tuple[str, ...]) -> list[dict[str, Any]]:
        if self.store is None:
            return []
        for address in addresses:
            try:
                items, _ = self.store.list(ResourceRef.parse(address))
            except Exception as exc:
                if error_code(exc) == 404:
                    continue  # that version (or the CRD) is not served
                raise
            return items
        return []

    # --- HTTP plumbing --------------------------------------------------------------------------
    def _serve(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Callable[[str, str, bytes], tuple[int, bytes, str]]],
        tls: ssl.SSLContext | None,
    ) -> None:
        def handle(request: Request) -> Response:
            path = request.path
            route = routes.get(path)
            if route is None:
                route = next((h for p, h in routes.items() if path.startswith(p + "/")), None)
            if route is None:
                status, data, ctype = 404, b"404 page not found\n", "text/plain"
            else:
                status, data, ctype = route(request.method, request.target, request.body)
            return Response(status=status, headers=[("content-type", ctype)], body=data)

        # stopping the lab's server closes kept-alive connections too: a proxy's long poll or a
        # scrape never reaches an istiod that is gone (or whoever gets its IP next)
        server = HttpServer(address[0], address[1], handle, name=f"istiod-{address[1]}", tls=tls)
        server.start()
        self._servers.append(server)

    def _api_routes(self) -> dict[str, Callable[[str, str, bytes], tuple[int, bytes, str]]]:
        return {CONFIG_PATH: self._config_route, CERTIFICATE_PATH: self._certificate_route}

    def _monitoring_routes(self) -> dict[str, Callable[[str, str, bytes], tuple[int, bytes, str]]]:
        return {
            "/version": lambda m, p, b: (200, f"{self.version}\n".encode(), "text/plain"),
            "/metrics": lambda m, p, b: (200, self.metrics().encode(), "text/plain; version=0.0.4"),
            "/debug/syncz": lambda m, p, b: (
                200,
                json.dumps(self.syncz(), indent=1).encode(),
                "application/json",
            ),
            "/ready": self._ready_route,
        }

    def _ready_route(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        del method, path, body
        if self._ready.is_set() and self.ca is not None:
            return 200, b"", "text/plain"
        return 503, b"not ready\n", "text/plain"

    # --- config distribution -------------------------------------------------------------------
    def _config_route(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        del method, body
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        proxy = (query.get("proxy") or ["unknown"])[0]
        proxy_version = (query.get("version") or [""])[0]
        proxy_type = (query.get("type") or ["sidecar"])[0]
        since = int((query.get("since") or ["-1"])[0])
        wait = min(60.0, float((query.get("wait") or ["0"])[0]))
        self._seen(proxy, proxy_version, waiting=True, proxy_type=proxy_type)
        try:
            deadline = time.monotonic() + wait
            with self._changed:
                while self._generation == since and not self._stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                unchanged = self._generation == since
            if unchanged:
                return 304, b"", "application/json"
            document = self.config_document()
            if proxy_type == "router":
                namespace = proxy.rpartition(".")[2]
                document = {
                    **document,
                    "objects": {**document["objects"], **self._gateway_secrets(document, namespace)},
                }
            self._seen(proxy, proxy_version, waiting=False, sent=int(document["version"]))
            return 200, json.dumps(document).encode(), "application/json"
        finally:
            self._seen(proxy, proxy_version, waiting=False)

    def _gateway_secrets(
        self, document: Mapping[str, Any], namespace: str
    ) -> dict[str, list[dict[str, Any]]]:
        """The ``credentialName`` secrets a gateway in ``namespace`` needs (SDS sends them to
        gateways only, never to sidecars)."""
        names = {
            str((server.get("tls") or {}).get("credentialName"))
            for gateway in document["objects"].get("gateways", [])
            for server in (gateway.get("spec") or {}).get("servers", []) or []
            if (server.get("tls") or {}).get("credentialName")
        }
        found = []
        for name in sorted(names):
            for candidate in (name, f"{name}-cacert"):
                if self.store is None:
                    break
                try:
                    found.append(self.store.get(SECRETS, namespace, candidate))
                except Exception as exc:
                    if error_code(exc) != 404:
                        raise
        return {GATEWAY_SECRETS_KIND: found}

    def _seen(
        self, proxy: str, proxy_version: str, *, waiting: bool, sent: int | None = None, proxy_type: str = ""
    ) -> None:
        with self._changed:
            entry = self._proxies.setdefault(proxy, {"sent": 0, "type": "sidecar"})
            if proxy_type in ("sidecar", "router"):
                entry["type"] = proxy_type
            entry["version"] = proxy_version
            entry["last_seen"] = time.monotonic()
            entry["waiting"] = waiting
            if sent is not None:
                entry["sent"] = sent

    def _pod_exists(self, proxy: str) -> bool:
        """A proxy id is ``<pod>.<namespace>``; a deleted pod's proxy is no longer connected (its
        last long poll may still be open for a few seconds)."""
        if self.store is None:
            return True
        pod, _, namespace = proxy.rpartition(".")
        try:
            self.store.get(PODS, namespace, pod)
        except Exception as exc:
            return error_code(exc) != 404
        return True

    def syncz(self) -> list[dict[str, Any]]:
        """Connected proxies, in the shape of istiod's ``/debug/syncz`` (``istioctl proxy-status``)."""
        now = time.monotonic()
        rows = []
        with self._changed:
            entries = sorted(self._proxies.items())
            generation = self._generation
        live = {proxy for proxy, _ in entries if self._pod_exists(proxy)}
        with self._changed:
            for proxy, entry in entries:
                if proxy not in live:
                    continue
                if not entry["waiting"] and now - entry["last_seen"] > PROXY_STALE_SECONDS:
                    continue
                state = "SYNCED" if entry["sent"] == generation else "STALE"
                sent = f"{entry['sent']}"
                rows.append(
                    {
                        "cluster_id": "Kubernetes",
                        "proxy": proxy,
                        "proxy_type": entry["type"],
                        "proxy_version": entry["version"],
                        "istio_version": entry["version"],
                        "istiod": self.ctx.pod_name,
                        "istiod_version": self.version,
                        "revision": revision_name(self.revision),
                        "cluster_sent": sent,
                        "cluster_acked": sent,
                        "listener_sent": sent,
                        "listener_acked": sent,
                        "route_sent": sent,
                        "route_acked": sent,
                        "endpoint_sent": sent,
                        "endpoint_acked": sent,
                        "sync_state": state,
                    }
                )
        return rows

    def metrics(self) -> str:
        connected = len(self.syncz())
        return (
            "# TYPE istio_build gauge\n"
            f'istio_build{{component="pilot",tag="{self.version}"}} 1\n'
            "# TYPE pilot_xds gauge\n"
            f'pilot_xds{{version="{self.version}"}} {connected}\n'
        )

    # --- CA service ------------------------------------------------------------------------------
    def _certificate_route(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        del path
        if method != "POST" or self.ca is None:
            return 405, b"POST a CSR\n", "text/plain"
        try:
            request = json.loads(body)
            namespace, pod = str(request["namespace"]), str(request["pod"])
            service_account = str(request["serviceAccount"])
            csr = str(request["csr"]).encode()
        except (ValueError, KeyError, TypeError):
            return 400, b"malformed certificate request\n", "text/plain"
        if not self._caller_is(namespace, pod, service_account):
            return 403, f"pod {namespace}/{pod} does not run as {service_account}\n".encode(), "text/plain"
        try:
            cert = self.ca.sign_csr(csr, namespace=namespace, service_account=service_account)
        except (ValueError, PermissionError) as exc:
            return 403, f"{exc}\n".encode(), "text/plain"
        answer = {
            "certificateChain": [
                cert.public_bytes(serialization.Encoding.PEM).decode(),
                self.ca.root_pem.decode(),
            ],
            "rootCert": self.ca.root_pem.decode(),
        }
        return 200, json.dumps(answer).encode(), "application/json"

    def _caller_is(self, namespace: str, pod: str, service_account: str) -> bool:
        """istiod authenticates the caller's service account token; the lab checks the pod claim."""
        if self.store is None:
            return True
        try:
            obj = self.store.get(PODS, namespace, pod)
        except Exception:
            return False
        return str((obj.get("spec") or {}).get("serviceAccountName") or "default") == service_account

    # --- injection ---------------------------------------------------------------------------
    def injection_config(self) -> InjectionConfig:
        image = self.ctx.image.rsplit("@", 1)[0]
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        hub = repository.rsplit("/", 1)[0] if "/" in repository else "docker.io/istio"
        overrides: dict[str, Any] = {
            "revision": self.revision,
            "native_sidecars": self.native_sidecars,
            "istio_namespace": self.namespace,
            "tags": self.revision_tags(),
        }
        data: Mapping[str, str] = {}
        if self.store is not None:
            try:
                data = (self.store.get(CONFIGMAPS, self.namespace, self.injector_configmap).get("data")) or {}
            except Exception:
                data = {}
        # The ConfigMap's values win, as upstream; the image's own hub and tag fill what they omit.
        defaults = InjectionConfig(hub=hub, tag=self.version)
        return InjectionConfig.from_configmap(data, defaults=defaults, **overrides)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        if self.store is None:
            return {}
        try:
            obj = self.store.get(NAMESPACES, None, namespace)
        except Exception:
            return {}
        return dict((obj.get("metadata") or {}).get("labels") or {})

    def review(self, admission_review: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one AdmissionReview v1 for a pod."""
        request = admission_review.get("request") or {}
        uid = request.get("uid", "")
        pod = dict(request.get("object") or {})
        namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default")
        pod.setdefault("metadata", {}).setdefault("namespace", namespace)
        response: dict[str, Any] = {"uid": uid, "allowed": True}
        if pod.get("kind", "Pod") == "Pod":
            decision, patch = inject_patch(
                pod,
                namespace,
                self.namespace_labels(namespace),
                self.injection_config(),
                faults=frozenset(self.faults.active()),
            )
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = _b64(json.dumps(patch).encode())
            name = (pod.get("metadata") or {}).get("name") or (pod.get("metadata") or {}).get(
                "generateName", ""
            )
            self._log(f"injection {namespace}/{name}: {decision.reason}")
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    def _inject(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        del path
        if method != "POST":
            return 405, b"POST an AdmissionReview\n", "text/plain"
        try:
            review = json.loads(body)
        except ValueError:
            return 400, b"could not decode the AdmissionReview\n", "text/plain"
        return 200, json.dumps(self.review(review)).encode(), "application/json"


def istiod_workload(ctx: WorkloadContext) -> Istiod:
    """The ``WorkloadFactory`` for pilot images."""
    return Istiod(ctx)
