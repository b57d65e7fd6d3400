"""Facts about pods that several controllers share: activeness, readiness, availability."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.apimachinery.selectors import match_label_selector, selector_to_string
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
    """A LabelSelector against a label set. Unlike the API's rule, an empty selector matches
    nothing here, as controllers treat it (a controller never adopts every pod)."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    return match_label_selector(selector, labels)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as the ``labelSelector`` query string (for ``status.selector``)."""
    return selector_to_string(selector) if selector else ""
