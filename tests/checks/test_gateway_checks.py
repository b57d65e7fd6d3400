"""Which reviews version served a product page, from the upstream and the lab page layouts."""

from __future__ import annotations

from pytest_meshcheck.checks.gateway import reviews_version

UPSTREAM = """
<div class="mt-0.5 text-gray-600 font-mono">Reviews served by:
                  reviews-v3-6f5b775685-9xk2p
</div>"""
LAB = "<dl>\n<dt>Reviews served by:</dt>\n<dd><u>reviews-v2-7d8f9-abcde</u></dd>\n</dl>"


def test_version_from_the_upstream_layout() -> None:
    assert reviews_version(UPSTREAM) == "v3"


def test_version_from_markup_around_the_pod_name() -> None:
    assert reviews_version(LAB) == "v2"


def test_no_version_when_reviews_were_unavailable() -> None:
    assert reviews_version("Sorry, product reviews are currently unavailable for this book.") is None
