"""``ApiServer``: the lab's HTTPS endpoint over a ``Store``.

TLS is negotiated on the handler thread, never on the accept loop, so a client that connects and
says nothing (or speaks plain HTTP) ties up one thread until its timeout, not the server.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from pytest_meshcheck.lab import pki
from pytest_meshcheck.lab.apiserver.admission import WebhookAdmission
from pytest_meshcheck.lab.apiserver.handler import ApiHandler
from pytest_meshcheck.lab.apiserver.runtime_api import PodRuntime
from pytest_meshcheck.lab.errors import AlreadyExists
from pytest_meshcheck.lab.resources import GVR, ResourceKind
from pytest_meshcheck.lab.store import Store

log = logging.getLogger(__name__)

#: Namespaces a real API server creates at start-up.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_TLS_HANDSHAKE_SECONDS = 10.0
ADMIN_USER = "system:admin"


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: ApiServer, context: ssl.SSLContext) -> None:
        self.api = api
        self._context = context
        super().__init__(address, ApiHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(_TLS_HANDSHAKE_SECONDS)
        # Headers and body leave in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every request.
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        tls.settimeout(ApiHandler.timeout)
        try:
            ApiHandler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ApiServer:
    """Start with ``start()``; ``url``, ``ca_pem`` and ``token`` are what clients need, and
    ``write_kubeconfig`` puts them in a file kubectl reads."""

    def __init__(
        self,
        store: Store,
        *,
        runtime: PodRuntime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path,
        ca: pki.CertificateAuthority | None = None,
        token: str | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.host = host
        self._requested_port = port
        self.state_dir = Path(state_dir)
        self.ca = ca or pki.CertificateAuthority()
        self.token = token or secrets.token_urlsafe(32)
        self.stopping = threading.Event()
        self._issued: dict[str, str] = {}
        self._issued_lock = threading.Lock()
        self._httpd: LabHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.webhooks = WebhookAdmission(store)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._httpd is not None:
            return
        serving = pki.api_server_certificate(self.ca, self.host)
        cert_path, key_path = serving.write(self.state_dir / "pki", "apiserver")
        self.ca.key_pair.write(self.state_dir / "pki", "ca")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
        context.set_alpn_protocols(["http/1.1"])
        self.stopping.clear()
        self._httpd = LabHTTPServer((self.host, self._requested_port), self, context)
        self._bootstrap()
        self.webhooks.install()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="lab-apiserver", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.webhooks.uninstall()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _bootstrap(self) -> None:
        for name in SYSTEM_NAMESPACES:
            with contextlib.suppress(AlreadyExists):
                self.store.create(GVR.core("namespaces"), {"metadata": {"name": name}})

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the API server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    # -- authentication ------------------------------------------------------------------------

    def is_valid_token(self, token: str) -> bool:
        if secrets.compare_digest(token, self.token):
            return True
        with self._issued_lock:
            return token in self._issued

    def issue_token(self, namespace: str, service_account: str) -> str:
        """A bearer token for a service account (TokenRequest, or the runtime's projected
        tokens). It authenticates like the admin token; the lab does not enforce RBAC."""
        token = secrets.token_urlsafe(32)
        with self._issued_lock:
            self._issued[token] = f"system:serviceaccount:{namespace}:{service_account}"
        return token

    def user_for(self, token: str) -> str | None:
        if secrets.compare_digest(token, self.token):
            return ADMIN_USER
        with self._issued_lock:
            return self._issued.get(token)

    def review(self, kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any]:
        """TokenReview and the access reviews: computed, never stored."""
        response = dict(body)
        response["apiVersion"] = kind.api_version
        response["kind"] = kind.kind
        response.setdefault("metadata", {})
        if kind.resource == "tokenreviews":
            token = str((body.get("spec") or {}).get("token", ""))
            user = self.user_for(token)
            if user is None:
                response["status"] = {"authenticated": False, "error": "invalid bearer token"}
            else:
                groups = ["system:authenticated"]
                if user.startswith("system:serviceaccount:"):
                    groups += ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
                else:
                    groups.insert(0, "system:masters")
                response["status"] = {"authenticated": True, "user": {"username": user, "groups": groups}}
        elif kind.resource == "selfsubjectrulesreviews":
            response["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        else:
            response["status"] = {
                "allowed": True,
                "reason": "the lab API server authorizes every authenticated user",
            }
        return response

    # -- kubeconfig ----------------------------------------------------------------------------

    def kubeconfig(self, cluster_name: str, *, namespace: str = "default") -> dict[str, Any]:
        user = f"{cluster_name}-admin"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": cluster_name,
                    "context": {"cluster": cluster_name, "user": user, "namespace": namespace},
                }
            ],
            "current-context": cluster_name,
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path, cluster_name: str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(self.kubeconfig(cluster_name), sort_keys=False))
        return path
