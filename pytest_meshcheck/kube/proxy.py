"""HTTP to a Service through the API server (``services/proxy``).

This is how the harness reaches Kiali and Prometheus on any cluster without port-forwards or
load balancers: the API server is always reachable from where pytest runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    """One HTTP request to ``service:port/path`` through the API server; any status is returned
    (an error from the proxied service is an answer to look at, not an exception)."""
    resource = service_proxy_path(namespace, service, port, path)
    if params:
        resource += "?" + urlencode(params)
    action = f"{method} {service}.{namespace}:{port}/{path.lstrip('/')} through the API server"
    with translated(action):
        method_, url, header_params, serialized_body, _ = kube.api_client.param_serialize(
            method,
            resource,
            header_params=dict(headers or {}),
            body=body,
            auth_settings=["BearerToken"],
        )
        response = kube.api_client.call_api(
            method_, url, header_params=header_params, body=serialized_body, _request_timeout=timeout
        )
        data = response.read()
    return ProxyResponse(
        status=int(response.status), headers=dict(response.headers or {}), body=bytes(data or b"")
    )
