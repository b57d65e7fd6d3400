"""Server-side apply: field ownership (``metadata.managedFields``), conflicts and the apply merge.

A field set is a set of paths; each path is a tuple of ``fieldsV1`` segments (``f:spec``,
``k:{"name":"app"}``). Lists that merge by key get one path element per entry, other lists and all
scalars are leaves. That is the structure of the real ``FieldsV1`` encoding, so managedFields
written here read like a real server's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pytest_meshcheck.lab.apimachinery.patches import merge_key_for
from pytest_meshcheck.lab.errors import Conflict

Path = tuple[str, ...]

#: Identity fields nobody "owns": they name the object rather than configure it.
_UNOWNED_TOP = {"apiVersion", "kind"}
_UNOWNED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}


def field_paths(obj: Mapping[str, Any]) -> set[Path]:
    """Every leaf path the object sets."""
    paths: set[Path] = set()
    for key, value in obj.items():
        if key in _UNOWNED_TOP:
            continue
        if key == "metadata" and isinstance(value, Mapping):
            trimmed = {k: v for k, v in value.items() if k not in _UNOWNED_META}
            if trimmed:
                _walk(trimmed, ("f:metadata",), paths)
            continue
        _walk_value(key, value, ("f:" + key,), paths)
    return paths


def _walk(node: Mapping[str, Any], prefix: Path, out: set[Path]) -> None:
    if not node:
        out.add(prefix)
    for key, value in node.items():
        _walk_value(key, value, (*prefix, "f:" + key), out)


def _walk_value(key: str, value: Any, path: Path, out: set[Path]) -> None:
    if isinstance(value, Mapping):
        _walk(value, path, out)
        return
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        merge_key = merge_key_for(key, value)
        if merge_key is not None and all(merge_key in v for v in value):
            for item in value:
                element = (*path, "k:" + json.dumps({merge_key: item[merge_key]}, separators=(",", ":")))
                rest = {k: v for k, v in item.items() if k != merge_key}
                out.add((*element, "f:" + merge_key))
                if rest:
                    _walk(rest, element, out)
            return
    out.add(path)


def value_at(obj: Any, path: Path) -> tuple[bool, Any]:
    """``(present, value)`` of a field path in an object."""
    current = obj
    for segment in path:
        kind, _, name = segment.partition(":")
        if kind == "f" and isinstance(current, Mapping) and name in current:
            current = current[name]
        elif kind == "k" and isinstance(current, list):
            wanted = json.loads(name)
            match = [
                i for i in current if isinstance(i, Mapping) and all(i.get(k) == v for k, v in wanted.items())
            ]
            if not match:
                return False, None
            current = match[0]
        else:
            return False, None
    return True, current


def remove_path(obj: Any, path: Path) -> None:
    if not path:
        return
    parent_present, parent = value_at(obj, path[:-1])
    if not parent_present:
        return
    kind, _, name = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(name)
        parent[:] = [
            i
            for i in parent
            if not (isinstance(i, Mapping) and all(i.get(k) == v for k, v in wanted.items()))
        ]


def encode(paths: Iterable[Path]) -> dict[str, Any]:
    """Field paths -> the nested ``fieldsV1`` map."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for segment in path:
            node = node.setdefault(segment, {})
    return root


def decode(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for segment, child in fields.items():
        if segment == ".":
            continue
        if isinstance(child, Mapping) and any(k != "." for k in child):
            paths |= decode(child, (*prefix, segment))
        else:
            paths.add((*prefix, segment))
    return paths


def _display(path: Path) -> str:
    out = ""
    for segment in path:
        kind, _, name = segment.partition(":")
        out += (
            f".{name}"
            if kind == "f"
            else f"[{','.join(f'{k}={json.dumps(v)}' for k, v in json.loads(name).items())}]"
        )
    return out


def managers_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(m) for m in (obj.get("metadata") or {}).get("managedFields") or []]


def _entry(
    manager: str, operation: str, api_version: str, paths: set[Path], subresource: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fieldsType": "FieldsV1",
        "fieldsV1": encode(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def record_update(
    before: Mapping[str, Any] | None,
    after: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    subresource: str = "",
) -> None:
    """A non-apply write: ``manager`` takes ownership of every field it changed (in ``after``)."""
    if not manager:
        return
    old_paths = field_paths(before) if before else set()
    new_paths = field_paths(after)
    changed = {p for p in new_paths if p not in old_paths or value_at(before, p) != value_at(after, p)}
    entries = managers_of(after)
    for entry in entries:
        if entry.get("manager") == manager:
            continue
        owned = decode(entry.get("fieldsV1") or {}) - changed
        entry["fieldsV1"] = encode(owned)
    entries = [e for e in entries if e.get("fieldsV1")]
    mine = next((e for e in entries if e["manager"] == manager and e.get("operation") == "Update"), None)
    owned = (decode(mine.get("fieldsV1") or {}) if mine else set()) | changed
    owned &= new_paths
    entries = [e for e in entries if e is not mine]
    if owned:
        entries.append(_entry(manager, "Update", api_version, owned, subresource))
    metadata = after.setdefault("metadata", {})
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


def server_side_apply(
    current: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    merge: Any,
) -> dict[str, Any]:
    """Merge ``applied`` (the manager's whole intent) into ``current``.

    Fields set to a different value than another manager owns them at are conflicts unless
    ``force`` (then ownership moves). Fields this manager applied before and no longer applies are
    removed unless someone else owns them too. ``merge`` is the strategic merge function.
    """
    applied_paths = field_paths(applied)
    entries = managers_of(current) if current else []
    previous = next(
        (e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None
    )
    previously_owned = decode(previous.get("fieldsV1") or {}) if previous else set()
    conflicts: list[tuple[str, Path]] = []
    for entry in entries:
        if entry is previous:
            continue
        owned = decode(entry.get("fieldsV1") or {})
        for path in applied_paths & owned:
            if value_at(current, path) != value_at(applied, path):
                conflicts.append((str(entry.get("manager", "")), path))
    if conflicts and not force:
        lines = [f'conflict with "{m}": {_display(p)}' for m, p in sorted(conflicts)]
        if len(lines) == 1:
            message = f"Apply failed with 1 conflict: {lines[0]}"
        else:
            message = f"Apply failed with {len(lines)} conflicts: " + "\n".join("- " + ln for ln in lines)
        raise Conflict(
            message,
            causes=[
                {"reason": "FieldManagerConflict", "message": ln, "field": _display(p)}
                for ln, (_, p) in zip(lines, sorted(conflicts), strict=True)
            ],
        )
    others_owned: set[Path] = set()
    kept_entries = []
    for entry in entries:
        if entry is previous:
            continue
        owned = decode(entry.get("fieldsV1") or {})
        if force:
            owned -= applied_paths
        if owned:
            entry["fieldsV1"] = encode(owned)
            kept_entries.append(entry)
            others_owned |= owned
    result: dict[str, Any] = copy.deepcopy(dict(current)) if current else {}
    for path in previously_owned - applied_paths - others_owned:
        remove_path(result, path)
    result = merge(result, copy.deepcopy(dict(applied)))
    kept_entries.append(_entry(manager, "Apply", api_version, applied_paths, ""))
    result.setdefault("metadata", {})["managedFields"] = kept_entries
    return result
