"""Istio's supported skew: at most one minor behind, never ahead."""

from __future__ import annotations

from pytest_meshcheck.checks.versions import skew_findings, version_tuple


def test_version_tuples() -> None:
    assert version_tuple("1.27.1") == (1, 27, 1)
    assert version_tuple("v1.26.3-distroless") == (1, 26, 3)
    assert version_tuple("latest") is None


def test_same_and_one_minor_behind_are_fine() -> None:
    assert skew_findings("1.27.1", {"a": "1.27.1", "b": "1.26.8", "c": "1.27.0"}) == []


def test_two_minors_behind_and_ahead_are_findings() -> None:
    findings = skew_findings(
        "1.27.1", {"old": "1.25.2", "new": "1.28.0", "patch-ahead": "1.27.3", "odd": "dev"}
    )
    assert findings == [
        "new: proxy 1.28.0 is newer than the control plane 1.27.1",
        "odd: proxy version 'dev' is not a release version",
        "old: proxy 1.25.2 is 2 minor versions behind the control plane 1.27.1 (at most 1 is supported)",
        "patch-ahead: proxy 1.27.3 is newer than the control plane 1.27.1",
    ]
