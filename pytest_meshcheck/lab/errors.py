"""Errors of the lab's object store, shaped like the Kubernetes API's own failures.

In-process callers (controllers, the kubelet, control-plane workloads) catch these directly; the
API server turns each into the ``Status`` object a real API server would send, so clients such as
kubectl print the messages their users already know ("... not found", "... already exists").
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base class: an HTTP status ``code``, a machine ``reason`` and a human ``message``."""

    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        name: str = "",
        group: str = "",
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes: list[dict[str, str]] = list(causes or [])

    def to_status(self) -> dict[str, Any]:
        """The ``meta.k8s.io/v1 Status`` body a real API server returns for this failure."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = list(self.causes)
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


class BadRequest(StoreError):
    code = 400
    reason = "BadRequest"


class Unauthorized(StoreError):
    code = 401
    reason = "Unauthorized"


class Forbidden(StoreError):
    code = 403
    reason = "Forbidden"


class NotFound(StoreError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(StoreError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(StoreError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(StoreError):
    code = 409
    reason = "AlreadyExists"


class Conflict(StoreError):
    code = 409
    reason = "Conflict"


class Gone(StoreError):
    code = 410
    reason = "Expired"


class RequestEntityTooLarge(StoreError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(StoreError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(StoreError):
    """422: the object failed validation; ``causes`` name the offending fields."""

    code = 422
    reason = "Invalid"


class InternalError(StoreError):
    """500: something behind the API failed (an admission webhook, a runtime call)."""

    code = 500
    reason = "InternalError"


class ServiceUnavailable(StoreError):
    code = 503
    reason = "ServiceUnavailable"


def not_found(kind: str, group: str, name: str) -> NotFound:
    """``pods "x" not found`` / ``deployments.apps "x" not found``, kubectl's wording."""
    qualified = f"{kind}.{group}" if group else kind
    return NotFound(f'{qualified} "{name}" not found', kind=kind, group=group, name=name)


def already_exists(kind: str, group: str, name: str) -> AlreadyExists:
    qualified = f"{kind}.{group}" if group else kind
    return AlreadyExists(f'{qualified} "{name}" already exists', kind=kind, group=group, name=name)


def invalid(kind_name: str, group: str, name: str, causes: list[dict[str, str]]) -> Invalid:
    """``Kind.group "name" is invalid: field: message`` with one cause per field."""
    qualified = f"{kind_name}.{group}" if group else kind_name
    summary = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return Invalid(
        f'{qualified} "{name}" is invalid: {summary}', kind=kind_name, group=group, name=name, causes=causes
    )
