"""Dynamic admission: calling MutatingWebhookConfiguration and ValidatingWebhookConfiguration
webhooks the way kube-apiserver does.

For each write the store admits, every webhook whose rules, namespaceSelector and objectSelector
match gets an ``admission.k8s.io/v1 AdmissionReview`` over HTTPS (verified against the webhook's
``caBundle``), at ``clientConfig.url`` or at a ready endpoint of ``clientConfig.service``. Mutating
webhooks run first, in order, and their JSONPatch responses are applied; then validating webhooks.
A webhook that cannot be called fails the request with the message kubectl users know
(``Internal error occurred: failed calling webhook "...": ...``) under ``failurePolicy: Fail`` and
is skipped under ``Ignore``.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import ssl
import uuid
from typing import Any

from pytest_meshcheck.lab.apimachinery.patches import apply_json_patch
from pytest_meshcheck.lab.apimachinery.selectors import match_label_selector
from pytest_meshcheck.lab.errors import InternalError, NotFound, ServiceUnavailable, StoreError
from pytest_meshcheck.lab.resources import GVR
from pytest_meshcheck.lab.store import AdmissionRequest, Store

log = logging.getLogger(__name__)

MUTATING = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
_EXEMPT = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
}
_PLUGIN_NAME = "webhook-admission"


class WebhookCallError(Exception):
    """The webhook could not be called or answered nonsense (subject to failurePolicy)."""


class WebhookAdmission:
    def __init__(self, store: Store) -> None:
        self._store = store

    def install(self) -> None:
        self._store.add_admission(_PLUGIN_NAME, mutate=self.mutate, validate=self.validate)

    def uninstall(self) -> None:
        self._store.remove_admission(_PLUGIN_NAME)

    # -- store admission entry points ----------------------------------------------------------

    def mutate(self, request: AdmissionRequest) -> dict[str, Any] | None:
        if request.kind.storage_key in _EXEMPT:
            return None
        changed = None
        for config, webhook in self._webhooks(MUTATING):
            if not self._matches(webhook, request):
                continue
            response = self._call(config, webhook, request)
            if response is None:
                continue
            self._raise_if_denied(webhook, response)
            patch = response.get("patch")
            if patch and request.object is not None:
                if response.get("patchType", "JSONPatch") != "JSONPatch":
                    raise InternalError(
                        f'Internal error occurred: failed calling webhook "{webhook.get("name")}": '
                        f"unsupported patch type {response.get('patchType')!r}"
                    )
                try:
                    operations = json.loads(base64.b64decode(patch))
                    request.object = apply_json_patch(request.object, operations)
                except (ValueError, StoreError) as exc:
                    raise InternalError(
                        f'Internal error occurred: failed calling webhook "{webhook.get("name")}": '
                        f"failed to apply the webhook's patch: {exc}"
                    ) from exc
                changed = request.object
        return changed

    def validate(self, request: AdmissionRequest) -> None:
        if request.kind.storage_key in _EXEMPT:
            return
        for config, webhook in self._webhooks(VALIDATING):
            if not self._matches(webhook, request):
                continue
            response = self._call(config, webhook, request)
            if response is not None:
                self._raise_if_denied(webhook, response)

    # -- matching ------------------------------------------------------------------------------

    def _webhooks(self, gvr: GVR) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        configs, _ = self._store.list(gvr)
        return [(config, webhook) for config in configs for webhook in config.get("webhooks") or []]

    def _matches(self, webhook: dict[str, Any], request: AdmissionRequest) -> bool:
        if not any(self._rule_matches(rule, webhook, request) for rule in webhook.get("rules") or []):
            return False
        obj = request.object if request.object is not None else request.old_object
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        if not match_label_selector(webhook.get("objectSelector", {}), labels):
            old_labels = ((request.old_object or {}).get("metadata") or {}).get("labels") or {}
            if request.old_object is None or not match_label_selector(
                webhook.get("objectSelector", {}), old_labels
            ):
                return False
        namespace_selector = webhook.get("namespaceSelector", {})
        if namespace_selector:
            if request.kind.storage_key == ("", "namespaces"):
                ns_labels = labels
            elif request.kind.namespaced:
                try:
                    namespace = self._store.get(GVR.core("namespaces"), None, request.namespace)
                    ns_labels = namespace["metadata"].get("labels") or {}
                except NotFound:
                    ns_labels = {}
            else:
                return True
            if not match_label_selector(namespace_selector, ns_labels):
                return False
        return True

    @staticmethod
    def _rule_matches(rule: dict[str, Any], webhook: dict[str, Any], request: AdmissionRequest) -> bool:
        operations = rule.get("operations") or []
        if "*" not in operations and request.operation not in operations:
            return False
        kind = request.kind
        groups = rule.get("apiGroups") or []
        if "*" not in groups and kind.group not in groups:
            return False
        versions = rule.get("apiVersions") or []
        exact = webhook.get("matchPolicy") == "Exact"
        if exact and "*" not in versions and kind.version not in versions:
            return False
        wanted = f"{kind.resource}/{request.subresource}" if request.subresource else kind.resource
        resources = rule.get("resources") or []
        resource_ok = any(
            r in ("*/*", wanted)
            or (r == "*" and not request.subresource)
            or (r == f"{kind.resource}/*" and request.subresource)
            or (r.startswith("*/") and request.subresource == r[2:])
            for r in resources
        )
        if not resource_ok:
            return False
        scope = rule.get("scope", "*")
        if scope == "Namespaced" and not kind.namespaced:
            return False
        return not (scope == "Cluster" and kind.namespaced)

    # -- calling -------------------------------------------------------------------------------

    @staticmethod
    def _review_version(webhook: dict[str, Any]) -> str:
        """The first AdmissionReview version the webhook accepts that the lab speaks (a real API
        server does the same; the two versions share one format)."""
        for version in webhook.get("admissionReviewVersions") or ["v1"]:
            if version in ("v1", "v1beta1"):
                return f"admission.k8s.io/{version}"
        raise WebhookCallError(
            "webhook does not accept known AdmissionReview versions: "
            f"{webhook.get('admissionReviewVersions')} (the lab speaks v1 and v1beta1)"
        )

    def _review(self, request: AdmissionRequest) -> dict[str, Any]:
        kind = request.kind
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        gvr = {"group": kind.group, "version": kind.version, "resource": kind.resource}
        body: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": request.name,
            "operation": request.operation,
            "userInfo": {"username": request.user, "groups": list(request.groups)},
            "object": request.object,
            "oldObject": request.old_object,
            "dryRun": request.dry_run,
            "options": {
                "kind": f"{request.operation.title()}Options",
                "apiVersion": "meta.k8s.io/v1",
                **request.options,
            },
        }
        if request.subresource:
            body["subResource"] = request.subresource
            body["requestSubResource"] = request.subresource
        if kind.namespaced:
            body["namespace"] = request.namespace
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}

    def _call(
        self, config: dict[str, Any], webhook: dict[str, Any], request: AdmissionRequest
    ) -> dict[str, Any] | None:
        name = str(webhook.get("name", ""))
        review = self._review(request)
        try:
            review["apiVersion"] = self._review_version(webhook)
            response = self._post(webhook, review)
        except WebhookCallError as exc:
            if webhook.get("failurePolicy", "Fail") == "Ignore":
                log.info("ignoring failed webhook %s: %s", name, exc)
                return None
            raise InternalError(f'Internal error occurred: failed calling webhook "{name}": {exc}') from exc
        if response.get("uid") != review["request"]["uid"]:
            if webhook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise InternalError(
                f'Internal error occurred: failed calling webhook "{name}": expected response.uid='
                f'"{review["request"]["uid"]}", got "{response.get("uid")}"'
            )
        return response

    @staticmethod
    def _raise_if_denied(webhook: dict[str, Any], response: dict[str, Any]) -> None:
        if response.get("allowed"):
            return
        status = response.get("status") or {}
        message = status.get("message") or "without explanation"
        error = StoreError(f'admission webhook "{webhook.get("name")}" denied the request: {message}')
        error.code = int(status.get("code") or 400)
        error.reason = str(status.get("reason") or ("Forbidden" if error.code == 403 else "BadRequest"))
        raise error

    def _endpoint(self, client_config: dict[str, Any]) -> tuple[str, int, str, str]:
        """(connect host, port, TLS server name, request path)."""
        if client_config.get("url"):
            from urllib.parse import urlsplit

            url = urlsplit(str(client_config["url"]))
            if url.scheme != "https":
                raise WebhookCallError(f"webhook URL must use https: {client_config['url']}")
            host = url.hostname or ""
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            return host, url.port or 443, host, path
        service = client_config.get("service") or {}
        namespace, name = str(service.get("namespace", "")), str(service.get("name", ""))
        port = int(service.get("port") or 443)
        path = str(service.get("path") or "/")
        from pytest_meshcheck.lab.apiserver.proxy import service_backend

        try:
            svc = self._store.get(GVR.core("services"), namespace, name)
        except NotFound as exc:
            raise WebhookCallError(f'failed to call webhook: service "{name}" not found') from exc
        port_name = ""
        for declared in (svc.get("spec") or {}).get("ports") or []:
            if int(declared.get("port", 0)) == port:
                port_name = str(declared.get("name", "")) or str(port)
        if not port_name:
            raise WebhookCallError(f'failed to call webhook: service "{name}" has no port {port}')
        try:
            ip, target_port = service_backend(self._store, namespace, name, port_name)
        except (NotFound, ServiceUnavailable) as exc:
            raise WebhookCallError(f"failed to call webhook: {exc.message}") from exc
        return ip, target_port, f"{name}.{namespace}.svc", path

    def _post(self, webhook: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
        client_config = webhook.get("clientConfig") or {}
        host, port, server_name, path = self._endpoint(client_config)
        context = ssl.create_default_context()
        ca_bundle = client_config.get("caBundle")
        if ca_bundle:
            try:
                context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
            except (ValueError, ssl.SSLError) as exc:
                raise WebhookCallError(f"invalid caBundle: {exc}") from exc
        timeout = float(webhook.get("timeoutSeconds") or 10)
        url = f"https://{server_name}:{port}{path}"
        payload = json.dumps(review).encode()
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
            try:
                tls = context.wrap_socket(raw, server_hostname=server_name)
            except BaseException:
                raw.close()
                raise
            connection = http.client.HTTPSConnection(server_name, port, timeout=timeout, context=context)
            connection.sock = tls
            try:
                connection.request(
                    "POST",
                    path,
                    body=payload,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )
                response = connection.getresponse()
                body = response.read(16 * 1024 * 1024)
            finally:
                connection.close()
        except TimeoutError as exc:
            raise WebhookCallError(
                f'failed to call webhook: Post "{url}": context deadline exceeded'
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise WebhookCallError(
                f'failed to call webhook: Post "{url}": tls: failed to verify certificate: '
                f"{exc.verify_message}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookCallError(f'failed to call webhook: Post "{url}": {exc}') from exc
        if response.status != 200:
            raise WebhookCallError(
                f"received invalid webhook response: expected status 200, got {response.status}"
            )
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise WebhookCallError(f"received invalid webhook response: {exc}") from exc
        result = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise WebhookCallError("received invalid webhook response: no response field")
        return result
