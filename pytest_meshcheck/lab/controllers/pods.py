"""Facts about pods that several controllers share: activeness, readiness, availability."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.runtime.timefmt import parse_rfc3339


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counted towards a ReplicaSet's replicas: not terminating and not finished."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the pod became Ready (epoch seconds), or None when it is not Ready."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") != "True":
                return None
            stamp = condition.get("lastTransitionTime")
            return parse_rfc3339(str(stamp)) if stamp else time.time()
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    return ready_since(pod) is not None


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float | None = None) -> bool:
    since = ready_since(pod)
    if since is None:
        return False
    if min_ready_seconds <= 0:
        return True
    return (now if now is not None else time.time()) - since >= min_ready_seconds


def labels_match(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set. An empty selector
    matches nothing here, as controllers treat it."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expression in expressions:
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


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as the ``labelSelector`` query string (for ``status.selector``)."""
    if not selector:
        return ""
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
