"""HTTP to a Service through the API server (``services/proxy``).

This is how the harness reaches Kiali and Prometheus on any cluster without port-forwards or
load balancers: the API server is always reachable from where pytest runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pytest_meshcheck.kube.client import Kube, translated


@dataclass(frozen=True, kw_only=True)
class ProxyResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def service_proxy_path(namespace: str, service: str, port: int | str, path: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"


def service_request(
    kube: Kube,
    namespace: str,
    service: str,
    port: int | str,
    path: str,
    *,
    method: str = "GET",
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> ProxyResponse:
    """One HTTP request to ``service:port/path`` through the API server; any status is returned."""
    resource = service_proxy_path(namespace, service, port, path)
    if params:
        resource += "?" + urlencode(params)
    action = f"{method} {service}.{namespace}:{port}/{path.lstrip('/')} through the API server"
    with translated(action):
        response = _call(kube, resource, method=method, headers=headers, body=body, timeout=timeout)
    try:
        data = response.data
        return ProxyResponse(status=int(response.status), headers=dict(response.headers or {}), body=data)
    finally:
        response.release_conn()


def _call(
    kube: Kube,
    resource: str,
    *,
    method: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    timeout: float,
) -> Any:
    """The raw call; an error status from the proxied service is a response, not an exception."""
    from kubernetes.client.exceptions import ApiException

    try:
        return kube.api_client.call_api(
            resource,
            method,
            header_params=dict(headers or {}),
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
    except ApiException as exc:
        if not exc.status:
            raise
        return _ErrorResponse(int(exc.status), dict(exc.headers or {}), (exc.body or b""))


class _ErrorResponse:
    """An ApiException's status, headers and body, shaped like the client's raw response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes | str) -> None:
        self.status = status
        self.headers = headers
        self.data = body.encode() if isinstance(body, str) else body

    def release_conn(self) -> None:
        return None
