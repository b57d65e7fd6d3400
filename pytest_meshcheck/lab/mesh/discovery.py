"""The lab's stand-in for xDS and the Istio CA service: how a proxy gets config and certificates.

Real proxies stream Envoy configuration over gRPC from istiod (15010 plaintext, 15012 TLS) and send
CSRs to istiod's CA service on 15012. The lab keeps the topology and the failure modes (a dead istiod
means stale config and no new certificates; a revisioned proxy talks to its revision's istiod) but
uses plain HTTP/JSON on istiod's plaintext port 15010:

- ``GET  /lab/v1/config?proxy=<pod>.<ns>&version=<v>&type=sidecar|router&since=<n>&wait=<s>`` long-polls:
  it answers as soon as the config generation differs from ``since`` (or after ``wait`` seconds with
  304). The body is ``{"version": n, "rootNamespace": ..., "objects": {kind: [...]}}``, the inputs
  of ``MeshConfig``.
- ``POST /lab/v1/certificate`` with ``{"namespace", "pod", "serviceAccount", "csr"}`` answers
  ``{"certificateChain": [pem], "rootCert": pem}``. istiod checks the claimed pod against the store.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

CONFIG_PATH = "/lab/v1/config"
CERTIFICATE_PATH = "/lab/v1/certificate"
#: istiod's plaintext discovery port.
XDS_PLAINTEXT_PORT = 15010


class ControlPlaneError(Exception):
    """istiod could not be reached or refused the request."""


class ControlPlane(Protocol):
    """What a proxy needs from istiod."""

    def fetch_config(self, *, since: int, wait: float) -> dict[str, Any] | None:
        """The config document when its version differs from ``since``; None when unchanged."""
        ...

    def sign(self, *, csr_pem: bytes, namespace: str, pod: str, service_account: str) -> tuple[bytes, bytes]:
        """``(certificate_pem, root_pem)``."""
        ...


class IstiodClient:
    """``ControlPlane`` over HTTP to istiod. ``address`` is looked up on every call (cluster DNS),
    so a proxy started before istiod's Service exists finds it once it does."""

    def __init__(
        self,
        address: Callable[[], tuple[str, int]],
        *,
        proxy_id: str,
        proxy_version: str,
        proxy_type: str = "sidecar",
        timeout: float = 10.0,
    ) -> None:
        self.proxy_type = proxy_type
        self._address = address
        self.proxy_id = proxy_id
        self.proxy_version = proxy_version
        self.timeout = timeout

    def _call(self, method: str, path: str, body: bytes | None, *, timeout: float) -> tuple[int, bytes]:
        try:
            host, port = self._address()
        except LookupError as exc:
            raise ControlPlaneError(f"istiod address: {exc}") from exc
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            headers = {"content-type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ControlPlaneError(f"istiod at {host}:{port}: {exc}") from exc
        finally:
            conn.close()

    def fetch_config(self, *, since: int, wait: float) -> dict[str, Any] | None:
        query = urllib.parse.urlencode(
            {
                "proxy": self.proxy_id,
                "version": self.proxy_version,
                "type": self.proxy_type,
                "since": since,
                "wait": wait,
            }
        )
        status, body = self._call("GET", f"{CONFIG_PATH}?{query}", None, timeout=wait + self.timeout)
        if status == 304:
            return None
        if status != 200:
            raise ControlPlaneError(f"istiod config: HTTP {status}: {body[:200]!r}")
        document: dict[str, Any] = json.loads(body)
        return document

    def sign(self, *, csr_pem: bytes, namespace: str, pod: str, service_account: str) -> tuple[bytes, bytes]:
        payload = json.dumps(
            {"namespace": namespace, "pod": pod, "serviceAccount": service_account, "csr": csr_pem.decode()}
        ).encode()
        status, body = self._call("POST", CERTIFICATE_PATH, payload, timeout=self.timeout)
        if status != 200:
            raise ControlPlaneError(f"istiod CA: HTTP {status}: {body[:200]!r}")
        answer = json.loads(body)
        return "".join(answer["certificateChain"]).encode(), str(answer["rootCert"]).encode()


def parse_address(value: str, default_port: int) -> tuple[str, int]:
    """``istiod.istio-system.svc:15012`` -> host and port; the port defaults when absent."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return value, default_port
    return host, int(port)
