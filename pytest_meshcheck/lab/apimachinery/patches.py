"""The three client-computed patch formats: JSON patch (RFC 6902), JSON merge patch (RFC 7386)
and Kubernetes strategic merge patch.

Strategic merge needs to know which lists merge by key. A real API server reads that from the Go
struct tags of each type; the lab keys it by field name, which is exact for every field kubectl's
client-side apply and ``kubectl patch`` touch on the kinds the harness uses (containers, ports,
env, volumes, volumeMounts, conditions ...). Lists not in the table are replaced whole, which is
also what the real server does for atomic lists.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from pytest_meshcheck.lab.errors import BadRequest, Invalid, UnsupportedMediaType

#: Lists of objects merged by a key field, by field name.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
}

#: Lists of scalars merged as sets rather than replaced.
MERGED_SCALAR_LISTS = frozenset({"finalizers"})

PATCH_CONTENT_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def merge_key_for(field: str, items: Sequence[Any]) -> str | None:
    """The key elements of list ``field`` merge on, or ``None`` for an atomic list."""
    if field == "ports":
        sample = [i for i in items if isinstance(i, dict)]
        if any("containerPort" in i for i in sample):
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


# -- JSON patch ---------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise Invalid(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise Invalid(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, for_insert=False)]
        else:
            raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")
    return current


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_insert=False)]
    raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_insert=True), value)
    else:
        raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise Invalid("cannot remove the document root")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(f"Unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_insert=False))
    raise Invalid(f"doc is missing path: /{'/'.join(tokens)}")


def apply_json_patch(doc: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise BadRequest("json patch must be a JSON array of operations")
    result: Any = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise BadRequest(f"invalid json patch operation: {json.dumps(operation)}")
        op = operation["op"]
        tokens = _pointer(str(operation["path"]))
        if op == "add":
            result = _add(result, tokens, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            _remove(result, tokens)
        elif op == "replace":
            _get(result, tokens)
            if tokens:
                _remove(result, tokens)
            result = _add(result, tokens, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = _pointer(str(operation.get("from", "")))
            value = copy.deepcopy(_get(result, source))
            if op == "move":
                _remove(result, source)
            result = _add(result, tokens, value)
        elif op == "test":
            if _get(result, tokens) != operation.get("value"):
                raise Invalid(f"testing value {operation['path']} failed")
        else:
            raise BadRequest(f"Unexpected kind: {op}")
    if not isinstance(result, dict):
        raise Invalid("json patch result is not an object")
    return result


# -- merge patch --------------------------------------------------------------------------------


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# -- strategic merge patch ----------------------------------------------------------------------


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge, including the directives kubectl generates: ``$patch``
    (replace/delete/merge), ``$retainKeys``, ``$setElementOrder/<list>`` and
    ``$deleteFromPrimitiveList/<list>``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = list(value or [])
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            doomed = set(json.dumps(v, sort_keys=True) for v in value or [])
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if json.dumps(v, sort_keys=True) not in doomed]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = apply_strategic_merge_patch(current, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, current if isinstance(current, list) else None, value)
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: list[Any] | None, patch: list[Any]) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if field in MERGED_SCALAR_LISTS:
        merged = list(current or [])
        for value in patch:
            if value not in merged:
                merged.append(copy.deepcopy(value))
        return merged
    key = merge_key_for(field, patch + list(current or []))
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [copy.deepcopy(p) for p in patch]
    merged = [copy.deepcopy(c) for c in current or []]
    for item in patch:
        if key not in item:
            raise Invalid(f"map: {item} does not contain declared merge key: {key}")
        position = next(
            (i for i, c in enumerate(merged) if isinstance(c, dict) and c.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
            continue
        if position is None:
            merged.append(apply_strategic_merge_patch({}, item))
        else:
            merged[position] = apply_strategic_merge_patch(merged[position], item)
    return merged


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """Reorder merged elements the way ``$setElementOrder`` lists them; others keep their place
    after the ordered ones."""
    key = merge_key_for(field, items)

    def identity(item: Any) -> str:
        if key is not None and isinstance(item, dict):
            return json.dumps(item.get(key), sort_keys=True)
        return json.dumps(item, sort_keys=True)

    rank = {identity(o): i for i, o in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(identity(item), len(rank)))


def patch_type_for(content_type: str) -> str:
    """Map a PATCH request's Content-Type to the patch flavour; 415 for anything else."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_CONTENT_TYPES:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_CONTENT_TYPES)
        )
    return PATCH_CONTENT_TYPES[media]


def apply_patch(current: dict[str, Any], patch: object, patch_type: str) -> dict[str, Any]:
    """Apply a ``json``, ``merge`` or ``strategic`` patch to an object."""
    if patch_type == "json":
        return apply_json_patch(current, patch)
    if not isinstance(patch, dict):
        raise BadRequest(f"{patch_type} patch must be a JSON object")
    if patch_type == "merge":
        result = apply_merge_patch(current, patch)
    else:
        result = apply_strategic_merge_patch(current, patch)
    if not isinstance(result, dict):
        raise Invalid("the patch removed the whole object")
    return result
