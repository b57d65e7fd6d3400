"""Kiali's login strategies: ``anonymous`` lets everyone in; ``token`` accepts a Kubernetes
bearer token (a ServiceAccount token) only if the API server authenticates it, as Kiali does by
calling the API server with the user's token, and then keeps a session cookie."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

SESSION_COOKIE = "kiali-token-Kubernetes"
SESSION_SECONDS = 24 * 3600


class TokenAuthenticator(Protocol):
    def user_for(self, token: str) -> str | None:
        """The user a bearer token belongs to, None when the API server refuses it."""
        ...


class ApiServerAuthenticator:
    """Asks the API server: a TokenReview sent with the user's own token (an invalid token gets
    401 before the review runs)."""

    def __init__(self, kubeconfig: str) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = str(cluster["server"]).rstrip("/")
        self._ssl = ssl.create_default_context()
        ca_data = cluster.get("certificate-authority-data")
        if ca_data:
            self._ssl.load_verify_locations(cadata=base64.b64decode(ca_data).decode())
        elif cluster.get("certificate-authority"):
            self._ssl.load_verify_locations(cafile=cluster["certificate-authority"])

    def user_for(self, token: str) -> str | None:
        body = json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        ).encode()
        request = urllib.request.Request(
            f"{self.server}/apis/authentication.k8s.io/v1/tokenreviews",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl) as reply:
                review = json.load(reply)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return None
        return str((status.get("user") or {}).get("username") or "")


@dataclass(frozen=True)
class Session:
    user: str
    expires: float


class Sessions:
    """Logged-in users by session id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def open(self, user: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(24)
        session = Session(user, time.time() + SESSION_SECONDS)
        with self._lock:
            self._sessions[session_id] = session
        return session_id, session

    def user(self, session_id: str) -> str | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.expires < time.time():
                self._sessions.pop(session_id, None)
                return None
            return session.user

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)


def expires_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
