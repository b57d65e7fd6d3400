"""Label and field selectors, in the string syntax of ``?labelSelector=`` / ``?fieldSelector=`` and
in the structured ``LabelSelector`` form that webhooks, Deployments and Services use."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.lab.errors import BadRequest

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split at commas that are not inside ``in (a,b)`` parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def holds(self, value: str | None) -> bool:
        if self.operator == "=":
            return value is not None and value in self.values
        if self.operator == "!=":
            return value is None or value not in self.values
        if self.operator == "in":
            return value is not None and value in self.values
        if self.operator == "notin":
            return value is None or value not in self.values
        if self.operator == "exists":
            return value is not None
        return value is None


@dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector`` string; callable on a labels mapping."""

    requirements: tuple[_Requirement, ...]

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(r.holds(labels.get(r.key)) for r in self.requirements)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed ``fieldSelector`` string; callable on a whole object."""

    requirements: tuple[_Requirement, ...]

    def __call__(self, obj: Mapping[str, Any]) -> bool:
        return all(r.holds(field_value(obj, r.key)) for r in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """``app=x,tier!=db,env in (a,b),!legacy``."""
    requirements = []
    for requirement in _split_requirements(text or ""):
        cmp = _CMP_RE.match(requirement)
        if cmp:
            key, op, value = cmp.groups()
            requirements.append(_Requirement(key, "!=" if op == "!=" else "=", frozenset({value})))
            continue
        match = _SET_RE.match(requirement)
        if not match:
            raise BadRequest(f"unable to parse requirement: {requirement.strip()!r}")
        negate, key, op, values_text = match.groups()
        if op:
            if negate:
                raise BadRequest(f"unable to parse requirement: {requirement.strip()!r}")
            values = frozenset(v.strip() for v in values_text.split(",") if v.strip())
            requirements.append(_Requirement(key, op, values))
        else:
            requirements.append(_Requirement(key, "!exists" if negate else "exists", frozenset()))
    return LabelSelector(tuple(requirements))


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field path, "" when absent (how field selectors compare)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str) -> FieldSelector:
    """``metadata.name=x,status.phase!=Running``."""
    requirements = []
    for requirement in (r for r in (text or "").split(",") if r.strip()):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", requirement)
        if not match:
            raise BadRequest(f"invalid selector: {requirement!r}; can't understand {requirement!r}")
        path, op, value = match.groups()
        requirements.append(_Requirement(path, "!=" if op == "!=" else "=", frozenset({value})))
    return FieldSelector(tuple(requirements))


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A structured ``LabelSelector`` (matchLabels + matchExpressions). ``None`` matches nothing,
    ``{}`` matches everything, as in the Kubernetes API."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = set(expression.get("values") or [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def selector_to_string(selector: Mapping[str, Any]) -> str:
    """The ``labelSelector`` query string of a structured selector (for scale status, tables)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
