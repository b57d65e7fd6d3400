"""The Kiali image in the lab: Kiali's REST API computed from Prometheus and the lab's objects.

Served on the port and under the ``web_root`` of Kiali's config.yaml (read from the pod's
ConfigMap volume). The graph comes from the queries Kiali runs (``graph``), so missing or stale
telemetry shows as it does in Kiali. Fault ``kiali-stale`` freezes the graph: from the moment the
fault is seen, every graph is evaluated at that moment, so timestamps stop and new edges never
appear, until the fault is cleared.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from pytest_meshcheck.lab.addons.cytoscape import cytoscape
from pytest_meshcheck.lab.addons.graph import DEFAULT_APPENDERS, BadGraphRequest, GraphOptions, build_graph
from pytest_meshcheck.lab.addons.health import HEALTH_TYPES, namespace_health
from pytest_meshcheck.lab.addons.kialiauth import (
    SESSION_COOKIE,
    ApiServerAuthenticator,
    Sessions,
    TokenAuthenticator,
    expires_text,
)
from pytest_meshcheck.lab.addons.kialiconfig import KialiConfig, config_path
from pytest_meshcheck.lab.addons.meshstatus import (
    NAMESPACES,
    component_status,
    list_or_empty,
    mesh_tls_status,
    namespace_tls_status,
    validations,
)
from pytest_meshcheck.lab.addons.mounts import ObjectReader, read_mounted_file, store_of
from pytest_meshcheck.lab.addons.promapi import HttpPrometheus, PrometheusApi, PrometheusUnavailable
from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response, common_log_line

IMAGES = ("quay.io/kiali/kiali",)
STALE_FAULT = "kiali-stale"
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_duration(text: str, default: int) -> int:
    """``60s``, ``10m``, ``1h`` or bare seconds."""
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if match is None:
        raise BadGraphRequest(f"invalid duration [{text}]")
    return int(match.group(1)) * _UNIT[match.group(2)]


def active_faults(services: Any) -> set[str]:
    """The fault switchboard's active names: an object with ``active()``, or a plain set."""
    source = services.get("faults") if hasattr(services, "get") else None
    if source is None:
        return set()
    if hasattr(source, "active"):
        return set(source.active())
    return {str(name) for name in source}


def _json(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status=status,
        headers=[("Content-Type", "application/json"), *(headers or [])],
        body=json.dumps(payload).encode(),
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _param(request: Request, name: str, default: str = "") -> str:
    values = request.query.get(name)
    return values[0] if values else default


class KialiWorkload:
    """Kiali's API server as a lab container."""

    def __init__(
        self,
        ctx: WorkloadContext,
        *,
        prometheus: PrometheusApi | None = None,
        authenticator: TokenAuthenticator | None = None,
        store: ObjectReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self._store = store
        self._prometheus = prometheus
        self._authenticator = authenticator
        self._clock = clock
        self.config = KialiConfig()
        self.sessions = Sessions()
        self._server: HttpServer | None = None
        self._lock = threading.Lock()
        self._frozen_at: float | None = None
        self._last_graph_time: float | None = None

    @property
    def store(self) -> ObjectReader:
        assert self._store is not None
        return self._store

    @property
    def prometheus(self) -> PrometheusApi:
        assert self._prometheus is not None
        return self._prometheus

    @property
    def address(self) -> str:
        return f"{self.ctx.bind_ip}:{self.config.port}"

    def start(self) -> None:
        if self._store is None:
            self._store = store_of(self.ctx)
        path = config_path(self.ctx.command, self.ctx.args)
        self.config = KialiConfig.parse(read_mounted_file(self.ctx, path, self._store))
        if self._prometheus is None:
            self._prometheus = HttpPrometheus(self.config.prometheus_url, self.ctx.dialer)
        if self._authenticator is None and self.ctx.services.get("kubeconfig"):
            self._authenticator = ApiServerAuthenticator(str(self.ctx.services["kubeconfig"]))
        self._server = HttpServer(
            self.ctx.bind_ip, self.config.port, self.handle, name="kiali", access_log=self._log
        )
        self._server.start()
        self.ctx.log.write(
            f"Kiali: server listening on {self.address}{self.config.web_root or '/'} "
            f"(auth strategy {self.config.strategy}, prometheus {self.config.prometheus_url})"
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        close = getattr(self._prometheus, "close", None)
        if callable(close):
            close()

    def _log(self, request: Request, response: Response) -> None:
        self.ctx.log.write(common_log_line(request, response))

    # -- routing -----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        root = self.config.web_root
        path = request.path
        if root and not (path == root or path.startswith(root + "/")):
            return _error(404, "not found")
        path = path[len(root) :] or "/"
        if path == "/healthz":
            return Response(status=200)
        if path in ("/api", "/api/"):
            return self._status()
        if path == "/api/auth/info":
            return self._auth_info()
        if path == "/api/authenticate":
            return self._authenticate(request)
        if path == "/api/logout":
            cookie = self._cookie(request)
            if cookie:
                self.sessions.close(cookie)
            return Response(status=204, headers=[("Set-Cookie", f"{SESSION_COOKIE}=; Max-Age=0; Path=/")])
        if not path.startswith("/api/"):
            return _error(404, "not found")
        if self._user(request) is None:
            return _error(401, "Unauthorized")
        try:
            return self._route(path, request)
        except BadGraphRequest as exc:
            return _error(400, str(exc))
        except PrometheusUnavailable as exc:
            return _error(503, f"error fetching metrics from Prometheus: {exc}")

    def _route(self, path: str, request: Request) -> Response:
        parts = path.strip("/").split("/")[1:]
        if parts == ["namespaces", "graph"]:
            return self._graph(request)
        if parts == ["namespaces"]:
            return _json(self._namespaces())
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "health":
            kind = _param(request, "type", "app")
            interval = parse_duration(_param(request, "rateInterval", "10m"), 600)
            return _json(self._health(parts[1], kind, interval, request))
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "tls":
            status = namespace_tls_status(self.store, parts[1], self.config.root_namespace)
            return _json({"status": status, "autoMTLSEnabled": True, "minTLS": "N/A"})
        if parts == ["clusters", "health"]:
            return self._clusters_health(request)
        if parts == ["istio", "validations"]:
            wanted = [n for n in _param(request, "namespaces").split(",") if n] or self._namespace_names()
            return _json(validations(self.store, wanted))
        if parts == ["mesh", "tls"]:
            status = mesh_tls_status(self.store, self.config.root_namespace)
            return _json({"status": status, "autoMTLSEnabled": True, "minTLS": "N/A"})
        if parts == ["istio", "status"]:
            reachable = bool(self.prometheus.version())
            return _json(
                component_status(self.store, self.config.istio_namespace, self.config.cluster_name, reachable)
            )
        return _error(404, "not found")

    # -- auth --------------------------------------------------------------------------------
    def _auth_info(self) -> Response:
        return _json({"strategy": self.config.strategy, "authorizationEndpoint": "", "sessionInfo": {}})

    @staticmethod
    def _cookie(request: Request) -> str:
        for header in request.headers.get_all("Cookie"):
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == SESSION_COOKIE:
                    return value
        return ""

    def _token_user(self, token: str) -> str | None:
        if not token or self._authenticator is None:
            return None
        return self._authenticator.user_for(token)

    def _user(self, request: Request) -> str | None:
        if self.config.strategy == "anonymous":
            return "anonymous"
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._token_user(token.strip())
        cookie = self._cookie(request)
        return self.sessions.user(cookie) if cookie else None

    def _authenticate(self, request: Request) -> Response:
        if self.config.strategy == "anonymous":
            return _json({"username": "anonymous", "expiresOn": expires_text(self._clock() + 24 * 3600)})
        if self.config.strategy != "token":
            return _error(500, f"auth strategy {self.config.strategy} is not available in this Kiali")
        form = parse_qs(request.body.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        if not token:
            scheme, _, bearer = (request.headers.get("Authorization") or "").partition(" ")
            token = bearer.strip() if scheme.lower() == "bearer" else ""
        user = self._token_user(token)
        if user is None:
            return _error(401, "Token is not valid or is expired")
        session_id, session = self.sessions.open(user)
        cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict"
        return _json(
            {"username": user, "expiresOn": expires_text(session.expires)}, headers=[("Set-Cookie", cookie)]
        )

    # -- status ------------------------------------------------------------------------------
    def _status(self) -> Response:
        tag = self.ctx.image_tag or "latest"
        external = [
            {"name": "Prometheus", "version": self.prometheus.version(), "url": self.config.prometheus_url}
        ]
        return _json(
            {
                "status": {"Kiali commit hash": "lab", "Kiali state": "running", "Kiali version": tag},
                "externalServices": external,
                "warningMessages": [],
                "istioEnvironment": {"isMaistra": False, "istioAPIEnabled": True},
            }
        )

    def _namespace_names(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in list_or_empty(self.store, NAMESPACES))

    def _namespaces(self) -> list[dict[str, Any]]:
        return [
            {
                "name": n["metadata"]["name"],
                "cluster": self.config.cluster_name,
                "isAmbient": False,
                "labels": n["metadata"].get("labels") or {},
                "annotations": n["metadata"].get("annotations") or {},
                "creationTimestamp": n["metadata"].get("creationTimestamp", ""),
            }
            for n in sorted(list_or_empty(self.store, NAMESPACES), key=lambda n: n["metadata"]["name"])
        ]

    def _health(self, namespace: str, kind: str, interval: int, request: Request) -> dict[str, Any]:
        if kind not in HEALTH_TYPES:
            raise BadGraphRequest(
                f"bad request, query parameter 'type' must be one of {sorted(HEALTH_TYPES)}"
            )
        at = float(_param(request, "queryTime") or self._clock())
        return namespace_health(self.store, self.prometheus, namespace, kind=kind, interval=interval, at=at)

    def _clusters_health(self, request: Request) -> Response:
        kind = _param(request, "type", "app")
        interval = parse_duration(_param(request, "rateInterval", "10m"), 600)
        namespaces = [n for n in _param(request, "namespaces").split(",") if n] or self._namespace_names()
        key = {
            "app": "namespaceAppHealth",
            "service": "namespaceServiceHealth",
            "workload": "namespaceWorkloadHealth",
        }
        if kind not in key:
            raise BadGraphRequest(f"bad request, query parameter 'type' must be one of {sorted(key)}")
        body = {key[kind]: {ns: self._health(ns, kind, interval, request) for ns in namespaces}}
        return _json(body)

    # -- graph -------------------------------------------------------------------------------
    def _evaluation_time(self, requested: str) -> float:
        """Now, a requested ``queryTime``, or the frozen moment while ``kiali-stale`` is active."""
        with self._lock:
            if STALE_FAULT in active_faults(self.ctx.services):
                if self._frozen_at is None:
                    self._frozen_at = self._last_graph_time or self._clock()
                return self._frozen_at
            self._frozen_at = None
        return float(requested) if requested else self._clock()

    def _graph(self, request: Request) -> Response:
        appenders_text = _param(request, "appenders", ",".join(DEFAULT_APPENDERS))
        at = self._evaluation_time(_param(request, "queryTime"))
        options = GraphOptions(
            namespaces=tuple(n for n in _param(request, "namespaces").split(",") if n),
            graph_type=_param(request, "graphType", "versionedApp"),
            duration=parse_duration(_param(request, "duration", "10m"), 600),
            inject_service_nodes=_param(request, "injectServiceNodes", "true").lower() != "false",
            appenders=tuple(a for a in appenders_text.split(",") if a),
            quantile=float(_param(request, "responseTimeQuantile", "0.95") or 0.95),
            query_time=at,
        )
        traffic = build_graph(self.prometheus, options)
        with self._lock:
            if self._frozen_at is None:
                self._last_graph_time = at
        body = cytoscape(traffic, graph_type=options.graph_type, duration=options.duration, timestamp=int(at))
        return _json(body)


def kiali_factory(ctx: WorkloadContext) -> KialiWorkload:
    return KialiWorkload(ctx)
