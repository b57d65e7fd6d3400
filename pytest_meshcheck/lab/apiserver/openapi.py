"""The OpenAPI v3 documents kubectl reads before it writes.

kubectl uses them for two decisions only, and these documents are shaped for exactly those:
- Server-side field validation: kubectl sends ``fieldValidation=Strict`` when the PATCH operation of
  the object's kind lists a ``fieldValidation`` query parameter. Every kind here does, so kubectl
  never falls back to downloading schemas for client-side validation.
- Client-side apply's patch type: when the PATCH operation declares no request body, kubectl does
  not compute strategic merge patches from OpenAPI; it uses the patch metadata compiled into it
  for built-in kinds and JSON merge patch for custom resources, the same result a full schema gives.
OpenAPI v2 is not served (404): kubectl 1.32 only needs v3.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pytest_meshcheck.lab.apiserver.discovery import KUBERNETES_VERSION
from pytest_meshcheck.lab.resources import ResourceKind, ResourceRegistry

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _item_path(kind: ResourceKind) -> str:
    prefix = "/" + _gv_path(kind.group, kind.version)
    if kind.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{kind.resource}/{{name}}"
    return f"{prefix}/{kind.resource}/{{name}}"


def _gvk(kind: ResourceKind) -> dict[str, str]:
    return {"group": kind.group, "version": kind.version, "kind": kind.kind}


def group_version_document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    kinds = registry.in_group_version(group, version)
    if not kinds:
        return None
    parameters = [{"name": name, "in": "query", "schema": {"type": "string"}} for name in _QUERY_PARAMETERS]
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for kind in kinds:
        if "patch" not in kind.verbs:
            continue
        paths[_item_path(kind)] = {
            "patch": {
                "operationId": f"patch{kind.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": _gvk(kind),
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
            }
        }
        schema_name = ".".join(p for p in (kind.group or "core", kind.version, kind.kind) if p)
        schemas[schema_name] = {"type": "object", "x-kubernetes-group-version-kind": [_gvk(kind)]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def root_document(registry: ResourceRegistry) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group version, with a content hash clients cache by."""
    paths: dict[str, Any] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            document = group_version_document(registry, group, version)
            if document is None:
                continue
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(document)}"}
    return {"paths": paths}


def document_for_path(registry: ResourceRegistry, path: str) -> dict[str, Any] | None:
    """``/openapi/v3/<path>`` with ``path`` like ``api/v1`` or ``apis/apps/v1``."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return group_version_document(registry, "", parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return group_version_document(registry, parts[1], parts[2])
    return None
