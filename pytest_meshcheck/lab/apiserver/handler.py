"""HTTP request handling: authentication, body limits, content negotiation, and the mapping of
REST verbs onto the store. Every failure leaves as a ``Status`` object; no client can make a
handler thread die with the connection in a half-written state it does not also close."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from pytest_meshcheck.lab.apimachinery import protobuf
from pytest_meshcheck.lab.apimachinery.patches import patch_type_for
from pytest_meshcheck.lab.apimachinery.validation import schema_unknown_fields, unknown_field_causes
from pytest_meshcheck.lab.apiserver import discovery, openapi, podio, proxy, tables, watching
from pytest_meshcheck.lab.apiserver.connio import LockedSocket
from pytest_meshcheck.lab.apiserver.routing import ResourceTarget, parse_resource_path
from pytest_meshcheck.lab.errors import (
    BadRequest,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    RequestEntityTooLarge,
    StoreError,
    Unauthorized,
    UnsupportedMediaType,
)
from pytest_meshcheck.lab.httpframing import Headers, ProtocolError, read_body
from pytest_meshcheck.lab.resources import GVR, ResourceKind
from pytest_meshcheck.lab.store import Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.server import LabHTTPServer

log = logging.getLogger(__name__)

#: Larger request bodies get 413, as from a real API server (its limit is 3 MiB).
MAX_BODY_BYTES = 3 * 1024 * 1024
#: Oversized bodies up to this size are read and dropped before the 413 goes out.
DRAIN_LIMIT_BYTES = 32 * 1024 * 1024
_ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/version/")
#: Media types answered with JSON. Protobuf is among them: Go clients (kubectl's typed clients,
#: Prometheus' service discovery) pick their decoder from the response's Content-Type, so a JSON
#: answer serves them as well as protobuf would.
_JSON_TYPES = (
    "application/json",
    "application/*",
    "*/*",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
    "",
)
PODS = GVR.core("pods")


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "meshcheck-lab-apiserver"
    #: Idle keep-alive connections are dropped after this many seconds.
    timeout = 120
    server: LabHTTPServer

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        self._started = False
        self._warnings: list[str] = []
        self._body_consumed = False
        try:
            url = urlsplit(self.path)
            self._url_path = url.path or "/"
            self._query = parse_qs(url.query, keep_blank_values=True)
            self._authenticate()
            self._route(method)
        except StoreError as exc:
            self._fail(exc)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            log.exception("internal error serving %s %s", method, self.path)
            self._fail(StoreError(f"Internal error occurred: {exc}"))
        finally:
            if not self._body_consumed:
                self._discard_body()

    def _fail(self, exc: StoreError) -> None:
        if self._started:
            self.close_connection = True
            return
        try:
            self._send_json(exc.code, exc.to_status())
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def _param(self, name: str, default: str = "") -> str:
        values = self._query.get(name)
        return values[0] if values else default

    def _flag(self, name: str) -> bool:
        return self._param(name).lower() in ("true", "1")

    def _authenticate(self) -> None:
        if self._url_path in _ANONYMOUS_PATHS or self._url_path.startswith(
            ("/healthz/", "/livez/", "/readyz/")
        ):
            return
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not self.server.api.is_valid_token(token.strip()):
            raise Unauthorized("Unauthorized")

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked, as ``httpframing`` reads it), at most
        ``MAX_BODY_BYTES``: more is 413, a body that cannot be read is 400, and either closes the
        connection, since what follows on it is no longer a request."""
        self._body_consumed = True
        headers = Headers(self.headers.items())
        try:
            return read_body(self.rfile, headers, until_close=False, max_bytes=MAX_BODY_BYTES)
        except ProtocolError as exc:
            self.close_connection = True
            if exc.status == 413:
                self._drain_declared_body(headers)
                raise RequestEntityTooLarge(f"request entity too large: limit is {MAX_BODY_BYTES}") from None
            raise BadRequest(f"unreadable request body: {exc}") from None

    def _drain_declared_body(self, headers: Headers) -> None:
        """Read a declared oversized body (up to ``DRAIN_LIMIT_BYTES``) and drop it, so the client
        gets to read the 413 instead of a reset."""
        length_text = headers.get("Content-Length") or ""
        remaining = int(length_text) if length_text.isdigit() else 0
        if remaining > DRAIN_LIMIT_BYTES:
            return
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)

    def _discard_body(self) -> None:
        """Unread request bodies would be parsed as the next request: read and drop them, or
        drop the connection when they are too big or cannot be read."""
        self._body_consumed = True
        if self.close_connection:
            return
        try:
            read_body(self.rfile, Headers(self.headers.items()), until_close=False, max_bytes=MAX_BODY_BYTES)
        except (ProtocolError, OSError, ValueError):
            self.close_connection = True

    def _parse_body(self, *, allow_list: bool = False) -> Any:
        raw = self._read_body()
        if not raw.strip():
            raise BadRequest("request body is empty")
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        data: Any
        try:
            if content_type == protobuf.PROTOBUF_CONTENT_TYPE:
                data = protobuf.decode_object(raw)
            elif content_type in ("application/yaml", "application/apply-patch+yaml", "text/yaml"):
                data = yaml.safe_load(raw)
            elif content_type in (
                "application/json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/json-patch+json",
                "",
                "text/plain",
            ):
                data = json.loads(raw)
            else:
                raise UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json, application/yaml (got {content_type})"
                )
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"couldn't get version/kind; json parse error: {exc}") from exc
        except yaml.YAMLError as exc:
            raise BadRequest(f"error converting YAML to JSON: {exc}") from exc
        if not (isinstance(data, dict) or (allow_list and isinstance(data, list))):
            raise BadRequest("the body must be a JSON object")
        return data

    def _accept_json(self) -> None:
        accept = self.headers.get("Accept", "")
        media = [part.split(";")[0].strip().lower() for part in accept.split(",")] if accept else [""]
        if not any(m in _JSON_TYPES for m in media):
            raise NotAcceptable(
                "only the following media types are accepted: application/json, application/yaml "
                f"(asked for {accept})"
            )

    def _wants_table(self) -> bool:
        accept = self.headers.get("Accept", "")
        first = accept.split(",")[0].replace(" ", "")
        return "as=Table" in first

    def _send_json(self, code: int, body: Any, *, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self._started = True
        extra = dict(headers or {})
        self.send_response(code)
        self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for warning in self._warnings:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_text(self, code: int, text: str) -> None:
        payload = text.encode()
        self._started = True
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _start_stream(self, content_type: str) -> LockedSocket:
        self._started = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        return LockedSocket(self.connection)

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    # -- routing -------------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        path = self._url_path
        api = self.server.api
        store = api.store
        registry = store.kinds()
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            self._send_text(200, "ok")
            return
        if method not in ("GET", "HEAD") and not parse_resource_path(path):
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method} {path})"
            )
        if path in ("/version", "/version/"):  # the Python client asks for /version/
            self._send_json(200, discovery.version_info())
            return
        if path in ("/api", "/api/", "/apis", "/apis/"):
            core = path.startswith("/api/") or path == "/api"
            media_type = discovery.aggregated_media_type(self.headers.get("Accept", ""))
            if media_type is not None:
                body = discovery.aggregated(registry, core=core, media_type=media_type)
                self._send_json(200, body, headers={"Content-Type": media_type})
            elif core:
                self._send_json(200, discovery.core_versions(f"{api.host}:{api.port}"))
            else:
                self._send_json(200, discovery.group_list(registry))
            return
        if path == "/openapi/v2":
            raise NotFound(
                "the server could not find the requested resource (OpenAPI v2 is not served; use /openapi/v3)"
            )
        if path in ("/openapi/v3", "/openapi/v3/"):
            self._send_json(200, openapi.root_document(registry))
            return
        if path.startswith("/openapi/v3/"):
            document = openapi.document_for_path(registry, path[len("/openapi/v3/") :])
            if document is None:
                raise NotFound("the server could not find the requested resource")
            self._send_json(
                200,
                document,
                headers={"Cache-Control": "public, immutable"} if "hash" in self._query else None,
            )
            return
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            found = discovery.resource_list(registry, "", parts[1])
            if found is None:
                raise NotFound("the server could not find the requested resource")
            self._send_json(200, found)
            return
        if len(parts) == 2 and parts[0] == "apis":
            group_doc = discovery.group(registry, parts[1])
            if group_doc is None:
                raise NotFound("the server could not find the requested resource")
            self._send_json(200, group_doc)
            return
        if len(parts) == 3 and parts[0] == "apis":
            found = discovery.resource_list(registry, parts[1], parts[2])
            if found is None:
                raise NotFound("the server could not find the requested resource")
            self._send_json(200, found)
            return
        target = parse_resource_path(path)
        if target is None:
            raise NotFound("the server could not find the requested resource")
        self._resource(method, target, store)

    def _resource(self, method: str, target: ResourceTarget, store: Store) -> None:
        kind = store.kinds().find(target.gvr)
        if kind is None or (target.namespace is not None and not kind.namespaced):
            raise NotFound(f"the server could not find the requested resource ({target.gvr})")
        namespace = target.namespace if kind.namespaced else None
        sub = target.subresource
        if sub is not None and sub not in kind.subresources:
            raise NotFound(
                f"the server could not find the requested resource ({kind.qualified_resource}/{sub})"
            )
        if sub == "proxy":
            self._body_consumed = True
            proxy.forward(
                self, store, kind, namespace=namespace, name=str(target.name), rest=target.rest, method=method
            )
            return
        if sub == "log" and method in ("GET", "HEAD"):
            podio.serve_logs(self, store, namespace or "", str(target.name))
            return
        if sub == "portforward":
            podio.serve_portforward(self, store, namespace or "", str(target.name))
            return
        if sub in ("exec", "attach"):
            podio.serve_exec(self, store, namespace or "", str(target.name), sub)
            return
        if target.name is None:
            self._collection(method, kind, namespace, store, watch=target.watch_prefix)
        else:
            self._item(
                method, kind, namespace, name=target.name, sub=sub, store=store, watch=target.watch_prefix
            )

    # -- collections and items -----------------------------------------------------------------

    def _collection(
        self, method: str, kind: ResourceKind, namespace: str | None, store: Store, *, watch: bool
    ) -> None:
        if kind.namespaced and namespace is None and method == "POST":
            raise NotFound("the server could not find the requested resource: a namespace is required")
        if method in ("GET", "HEAD"):
            self._accept_json()
            if watch or self._flag("watch"):
                watching.serve_watch(self, kind, namespace, store, name=None)
                return
            items, rv = store.list(
                kind.gvr,
                namespace,
                label_selector=self._param("labelSelector"),
                field_selector=self._param("fieldSelector"),
            )
            items, list_meta = self._paginate(items, rv)
            if self._wants_table():
                table = tables.table(
                    kind,
                    list(items),
                    resource_version=rv,
                    include_object=self._param("includeObject", "Metadata"),
                )
                table["metadata"] = list_meta
                self._send_json(200, table)
                return
            self._send_json(
                200,
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": list_meta,
                    "items": items,
                },
            )
        elif method == "POST":
            body = self._parse_body()
            if store.kinds().is_virtual(kind):
                self._send_json(201, self.server.api.review(kind, body))
                return
            self._validate_fields(kind, body)
            created = store.create(
                kind.gvr,
                body,
                namespace=namespace,
                dry_run=self._dry_run(),
                field_manager=self._field_manager("create"),
            )
            self._send_json(201, self._maybe_table(kind, created))
        elif method == "DELETE":
            options = self._delete_options()
            items, rv = store.list(
                kind.gvr,
                namespace,
                label_selector=self._param("labelSelector"),
                field_selector=self._param("fieldSelector"),
            )
            deleted = []
            for item in items:
                meta = item["metadata"]
                try:
                    deleted.append(
                        store.delete(
                            kind.gvr,
                            meta.get("namespace"),
                            meta["name"],
                            propagation=options[0],
                            dry_run=self._dry_run(),
                            grace_period_seconds=self._grace,
                        )
                    )
                except NotFound:
                    continue
            self._send_json(
                200,
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": rv},
                    "items": deleted,
                },
            )
        else:
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method})"
            )

    def _item(
        self,
        method: str,
        kind: ResourceKind,
        namespace: str | None,
        *,
        name: str,
        sub: str | None,
        store: Store,
        watch: bool,
    ) -> None:
        if kind.namespaced and namespace is None:
            raise NotFound("the server could not find the requested resource: a namespace is required")
        if method in ("GET", "HEAD"):
            self._accept_json()
            if watch or self._flag("watch"):
                watching.serve_watch(self, kind, namespace, store, name=name)
                return
            if sub == "scale":
                self._send_json(200, store.get_scale(kind.gvr, namespace, name))
                return
            self._send_json(200, self._maybe_table(kind, store.get(kind.gvr, namespace, name)))
        elif method == "PUT":
            body = self._parse_body()
            meta = body.setdefault("metadata", {}) if isinstance(body.get("metadata", {}), dict) else None
            if meta is None:
                raise BadRequest("metadata must be an object")
            if meta.get("name") and meta["name"] != name:
                raise BadRequest(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
            if namespace:
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the "
                        "request"
                    )
                meta["namespace"] = namespace
            if sub != "scale":
                self._validate_fields(kind, body)
            updated = store.update(
                kind.gvr,
                body,
                subresource=sub,
                dry_run=self._dry_run(),
                field_manager=self._field_manager("update"),
            )
            self._send_json(200, updated)
        elif method == "PATCH":
            patch_type = patch_type_for(self.headers.get("Content-Type", ""))
            body = self._parse_body(allow_list=patch_type == "json")
            if isinstance(body, dict) and sub != "scale":
                self._validate_fields(kind, body)
            manager = self._param("fieldManager")
            if patch_type == "apply" and not manager:
                raise BadRequest("PATCH /apply requires fieldManager to be set")
            existed = True
            if patch_type == "apply":
                try:
                    store.get(kind.gvr, namespace, name)
                except NotFound:
                    existed = False
            patched = store.patch(
                kind.gvr,
                namespace,
                name,
                body,
                patch_type=patch_type,
                subresource=sub,
                field_manager=manager or self._field_manager("patch"),
                force=self._flag("force"),
                dry_run=self._dry_run(),
            )
            self._send_json(200 if existed else 201, patched)
        elif method == "DELETE":
            propagation, uid, rv = self._delete_options()
            deleted = store.delete(
                kind.gvr,
                namespace,
                name,
                propagation=propagation,
                preconditions_uid=uid,
                preconditions_resource_version=rv,
                dry_run=self._dry_run(),
                grace_period_seconds=self._grace,
            )
            self._send_json(200, deleted)
        elif method == "POST" and sub == "eviction" and kind.storage_key == ("", "pods"):
            self._parse_body()
            store.delete(PODS, namespace, name)
            self._send_json(
                201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            )
        elif method == "POST" and sub == "binding" and kind.storage_key == ("", "pods"):
            body = self._parse_body()
            node = (body.get("target") or {}).get("name", "")
            store.patch(PODS, namespace, name, {"spec": {"nodeName": node}}, patch_type="merge")
            self._send_json(
                201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            )
        elif method == "POST" and sub == "token" and kind.storage_key == ("", "serviceaccounts"):
            body = self._parse_body()
            store.get(kind.gvr, namespace, name)
            seconds = int((body.get("spec") or {}).get("expirationSeconds") or 3600)
            token = self.server.api.issue_token(namespace or "", name)
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
            self._send_json(
                201,
                {
                    **body,
                    "kind": "TokenRequest",
                    "apiVersion": "authentication.k8s.io/v1",
                    "status": {"token": token, "expirationTimestamp": expiry},
                },
            )
        else:
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method})"
            )

    def _paginate(self, items: list[dict[str, Any]], rv: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``limit``/``continue``: pages in (namespace, name) order. A continue token carries the
        last key served; the items after it are read from the current state (the lab keeps no
        snapshots, so a page may show changes made since the first one)."""
        token = self._param("continue")
        if token:
            try:
                position = json.loads(base64.urlsafe_b64decode(token.encode()))
                after = (str(position["ns"]), str(position["name"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest(f"invalid continue token {token!r}") from exc
            items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > after]
        limit_text = self._param("limit")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError as exc:
            raise BadRequest(f"invalid limit {limit_text!r}") from exc
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            position = {"ns": last.get("namespace", ""), "name": last["name"]}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items, metadata

    def _maybe_table(self, kind: ResourceKind, obj: dict[str, Any]) -> Any:
        if self._wants_table():
            return tables.table(
                kind,
                [obj],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=self._param("includeObject", "Metadata"),
            )
        return obj

    def _dry_run(self) -> bool:
        values = self._query.get("dryRun") or []
        for value in values:
            if value not in ("All", ""):
                raise BadRequest(f'Invalid dryRun value "{value}": valid values are "All"')
        return "All" in values

    def _field_manager(self, operation: str) -> str:
        manager = self._param("fieldManager")
        if manager:
            return manager
        agent = self.headers.get("User-Agent", "")
        return agent.split("/")[0] if agent else f"unknown-{operation}"

    def _delete_options(self) -> tuple[str, str | None, str | None]:
        """(propagation, uid precondition, resourceVersion precondition); the grace period
        lands in ``self._grace``."""
        propagation = self._param("propagationPolicy")
        uid = rv = None
        grace_text = self._param("gracePeriodSeconds")
        length = self.headers.get("Content-Length")
        if length and length != "0":
            options = self._parse_body()
            propagation = options.get("propagationPolicy") or propagation
            if options.get("orphanDependents") is True and not propagation:
                propagation = "Orphan"
            preconditions = options.get("preconditions") or {}
            uid = preconditions.get("uid")
            rv = preconditions.get("resourceVersion")
            if options.get("dryRun"):
                self._query.setdefault("dryRun", []).extend(options["dryRun"])
            if options.get("gracePeriodSeconds") is not None:
                grace_text = str(options["gracePeriodSeconds"])
        try:
            self._grace = int(grace_text) if grace_text else None
        except ValueError as exc:
            raise BadRequest(f"invalid gracePeriodSeconds {grace_text!r}") from exc
        if self._param("orphanDependents") == "true" and not propagation:
            propagation = "Orphan"
        return propagation or "Background", uid, rv

    def _validate_fields(self, kind: ResourceKind, body: dict[str, Any]) -> None:
        mode = self._param("fieldValidation", "Warn") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise BadRequest(f'fieldValidation must be one of "Strict", "Warn", "Ignore", got "{mode}"')
        if mode == "Ignore":
            return
        content = {k: v for k, v in body.items() if not str(k).startswith("$")}
        message = protobuf.message_for(kind.api_version, kind.kind)
        if not kind.crd and protobuf.fields_by_name(message) is not None:
            unknown = protobuf.unknown_fields(content, message)
        else:
            unknown = unknown_field_causes(content, kind.kind, is_crd=bool(kind.crd))
            if kind.crd and kind.schema:
                unknown += schema_unknown_fields(content, kind.schema)
        if not unknown:
            return
        messages = [f'unknown field "{path.lstrip(".")}"' for path in unknown]
        if mode == "Strict":
            raise BadRequest("strict decoding error: " + ", ".join(messages))
        self._warnings.extend(messages)
