"""``services/{name}/proxy`` and ``pods/{name}/proxy``: HTTP through the API server to a ready
endpoint of a service, or to a pod, as ``kubectl proxy`` users and the harness use it to reach
Prometheus and Kiali on any cluster.

The name segment may carry a scheme and a port: ``[https:]name[:port]`` where the port is a
service port's name or number (for pods: a container port number).
"""

from __future__ import annotations

import http.client
import random
import ssl
from typing import TYPE_CHECKING, Any

from pytest_meshcheck.lab.errors import NotFound, ServiceUnavailable
from pytest_meshcheck.lab.resources import GVR, ResourceKind
from pytest_meshcheck.lab.store import Store

if TYPE_CHECKING:
    from pytest_meshcheck.lab.apiserver.handler import ApiHandler

#: Response bodies larger than this are cut off with 502 (Prometheus answers stay far below).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
PROXY_TIMEOUT_SECONDS = 30.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "authorization",
}


def split_proxy_name(text: str) -> tuple[str, str, str]:
    """``https:svc:metrics`` -> (scheme, name, port); missing parts are ""."""
    parts = text.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", text, ""


def service_backend(store: Store, namespace: str, name: str, port: str) -> tuple[str, int]:
    """A ready endpoint (ip, port) of the service port ``port`` (name or number, "" = first)."""
    service = store.get(GVR.core("services"), namespace, name)
    ports = (service.get("spec") or {}).get("ports") or []
    chosen = None
    for candidate in ports:
        if port in ("", str(candidate.get("name", "")), str(candidate.get("port", ""))):
            chosen = candidate
            break
    if chosen is None:
        raise ServiceUnavailable(f'no service port "{port}" found for service "{name}"')
    try:
        endpoints = store.get(GVR.core("endpoints"), namespace, name)
    except NotFound as exc:
        raise ServiceUnavailable(f'no endpoints available for service "{name}"') from exc
    port_name = str(chosen.get("name", ""))
    candidates: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or []:
        subset_ports = subset.get("ports") or []
        match = next(
            (p for p in subset_ports if str(p.get("name", "")) == port_name or len(subset_ports) == 1), None
        )
        if match is None:
            continue
        candidates.extend(
            (str(a["ip"]), int(match["port"])) for a in subset.get("addresses") or [] if a.get("ip")
        )
    if not candidates:
        raise ServiceUnavailable(f'no endpoints available for service "{name}"')
    chosen_ip, chosen_port = random.choice(candidates)
    return chosen_ip, chosen_port


def pod_backend(store: Store, namespace: str, name: str, port: str) -> tuple[str, int]:
    pod = store.get(GVR.core("pods"), namespace, name)
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise ServiceUnavailable(f'pod "{name}" has no IP address yet')
    if port:
        if not port.isdigit():
            for container in (pod.get("spec") or {}).get("containers") or []:
                for declared in container.get("ports") or []:
                    if declared.get("name") == port:
                        return str(ip), int(declared["containerPort"])
            raise ServiceUnavailable(f'pod "{name}" has no port named "{port}"')
        return str(ip), int(port)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            return str(ip), int(declared["containerPort"])
    return str(ip), 80


def forward(
    handler: ApiHandler,
    store: Store,
    kind: ResourceKind,
    *,
    namespace: str | None,
    name: str,
    rest: str,
    method: str,
) -> None:
    scheme, target, port = split_proxy_name(name)
    if kind.storage_key == ("", "services"):
        host, target_port = service_backend(store, namespace or "", target, port)
    elif kind.storage_key == ("", "pods"):
        host, target_port = pod_backend(store, namespace or "", target, port)
    else:
        raise NotFound(f"proxying to {kind.resource} is not supported by the lab")
    body = handler._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
    query = handler.path.split("?", 1)[1] if "?" in handler.path else ""
    path = (rest or "/") + (f"?{query}" if query else "")
    connection: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            host, target_port, timeout=PROXY_TIMEOUT_SECONDS, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, target_port, timeout=PROXY_TIMEOUT_SECONDS)
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
    headers["Host"] = f"{host}:{target_port}"
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        payload = response.read(MAX_RESPONSE_BYTES + 1)
        status, reason = response.status, response.reason
        response_headers: list[tuple[str, Any]] = [
            (k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP
        ]
    except (OSError, http.client.HTTPException) as exc:
        raise ServiceUnavailable(
            f"error trying to reach service: dial tcp {host}:{target_port}: {exc}"
        ) from exc
    finally:
        connection.close()
    if len(payload) > MAX_RESPONSE_BYTES:
        raise ServiceUnavailable("proxied response too large")
    handler._started = True
    handler.send_response(status, reason)
    for key, value in response_headers:
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if method != "HEAD":
        handler.wfile.write(payload)
