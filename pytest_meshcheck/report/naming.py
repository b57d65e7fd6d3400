"""Which suite a test belongs to, what its check is called, and how much it matters.

The Allure labels and the summary both use these, so the report groups a run the same way the
verdict counts it.
"""

from __future__ import annotations

import pytest

from pytest_meshcheck.settings import SUITES

#: Tests without a ``meshcheck_<suite>`` marker (the user's own checks) are grouped here.
OTHER_SUITE = "other"

#: Allure severity per suite: what breaks traffic or security is critical, observability normal.
SEVERITY_BY_SUITE: dict[str, str] = {
    "injection": "critical",
    "mtls": "blocker",
    "gateway": "critical",
    "graph": "normal",
    "versions": "normal",
    "load": "critical",
    "upgrade": "critical",
    "benchmark": "minor",
    OTHER_SUITE: "normal",
}


def suite_of(item: pytest.Item) -> str:
    for mark in item.iter_markers():
        if mark.name.startswith("meshcheck_") and mark.name[len("meshcheck_") :] in SUITES:
            return mark.name[len("meshcheck_") :]
    return OTHER_SUITE


def suite_from_keywords(keywords: object) -> str:
    """The suite from a report's ``keywords`` (all an xdist controller has of the item)."""
    names = keywords if isinstance(keywords, dict) else {}
    for suite in SUITES:
        if f"meshcheck_{suite}" in names:
            return suite
    return OTHER_SUITE


def check_name(item: pytest.Item) -> str:
    """The check a test verifies, from its function name (parameters are not part of it)."""
    name = getattr(item, "originalname", None) or item.name
    return name.removeprefix("test_").replace("_", " ")
