"""The pages productpage renders, shaped like the upstream templates.

Checks and people grep these pages (``<title>Simple Bookstore App</title>``, "Reviews served by:",
``glyphicon-star`` inside ``<font color="red">``, the error sentences), so those strings follow
the upstream sample; the rest is plain, escaped HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any

TITLE = "Simple Bookstore App"
DETAILS_ERROR_HEADING = "Error fetching product details!"
REVIEWS_ERROR_HEADING = "Error fetching product reviews!"
MAX_STARS = 5


def _page(body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f"<title>{TITLE}</title>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        "</head>\n<body>\n"
        f"{body}\n"
        "</body>\n</html>\n"
    )


def index_page(services: list[tuple[str, str]]) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(name)}</td><td>{escape(endpoint)}</td></tr>" for name, endpoint in services
    )
    return _page(
        '<div class="container">\n'
        "<h3>Hello! This is a simple bookstore application consisting of three services as shown "
        "below</h3>\n"
        f'<table class="table">\n<tr><th>name</th><th>endpoint</th></tr>\n{rows}\n</table>\n'
        "<p>Click on one of the links below to auto generate a request to the backend as a real user "
        "or a tester</p>\n"
        '<p><a href="/productpage?u=normal">Normal user</a></p>\n'
        '<p><a href="/productpage?u=test">Test user</a></p>\n'
        "</div>"
    )


def _navbar(user: str) -> str:
    if user:
        account = (
            f'<p class="navbar-text navbar-right">'
            f'<i class="glyphicon glyphicon-user"></i> {escape(user)} '
            '<a href="logout" class="navbar-link">sign out</a></p>'
        )
    else:
        account = (
            '<form method="post" action="login" name="login_form">'
            '<input type="text" name="username" placeholder="User Name"> '
            '<input type="password" name="passwd" placeholder="Password"> '
            '<button type="submit" class="btn btn-default">Sign in</button></form>'
        )
    return (
        '<nav class="navbar navbar-inverse navbar-static-top">\n<div class="container">\n'
        '<div class="navbar-header"><a class="navbar-brand" href="#">BookInfo Sample</a></div>\n'
        f"{account}\n</div>\n</nav>"
    )


def _details_html(status: int, details: dict[str, Any]) -> str:
    if status != 200 or "error" in details:
        return (
            f'<h4 class="text-center text-primary">{DETAILS_ERROR_HEADING}</h4>\n'
            f"<p>{escape(str(details.get('error', '')))}</p>"
        )
    facts = [
        ("Type:", details.get("type")),
        ("Pages:", details.get("pages")),
        ("Publisher:", details.get("publisher")),
        ("Language:", details.get("language")),
        ("ISBN-10:", details.get("ISBN-10")),
        ("ISBN-13:", details.get("ISBN-13")),
    ]
    rows = "\n".join(f"<dt>{label}</dt>{escape(str(value))}" for label, value in facts)
    return f'<h4 class="text-center text-primary">Book Details</h4>\n<dl>\n{rows}\n</dl>'


def _stars_html(rating: dict[str, Any]) -> str:
    stars = rating.get("stars")
    if isinstance(stars, int):
        count = max(0, min(MAX_STARS, stars))
        full = '<span class="glyphicon glyphicon-star"></span>\n' * count
        empty = '<span class="glyphicon glyphicon-star-empty"></span>\n' * (MAX_STARS - count)
        return f'<font color="{escape(str(rating.get("color", "black")))}">\n{full}{empty}</font>'
    if rating.get("error"):
        return f"<p><i>{escape(str(rating['error']))}</i></p>"
    return ""


def _reviews_html(status: int, reviews: dict[str, Any]) -> str:
    if status != 200 or "error" in reviews:
        return (
            f'<h4 class="text-center text-primary">{REVIEWS_ERROR_HEADING}</h4>\n'
            f"<p>{escape(str(reviews.get('error', '')))}</p>"
        )
    blocks = []
    for review in reviews.get("reviews", []):
        rating = review.get("rating")
        stars = _stars_html(rating) if isinstance(rating, dict) else ""
        blocks.append(
            "<blockquote>\n"
            f"<p>{escape(str(review.get('text', '')))}</p>\n"
            f"<small>{escape(str(review.get('reviewer', '')))}</small>\n"
            f"{stars}\n"
            "</blockquote>"
        )
    served_by = f"<u>{escape(str(reviews.get('podname', '')))}</u>"
    cluster = reviews.get("clustername")
    if cluster and cluster != "null":
        served_by += f" on cluster <u>{escape(str(cluster))}</u>"
    return "\n".join(blocks) + f"\n<dl>\n<dt>Reviews served by:</dt>\n{served_by}\n</dl>"


def product_page(
    *,
    product: dict[str, Any],
    user: str,
    details_status: int,
    details: dict[str, Any],
    reviews_status: int,
    reviews: dict[str, Any],
) -> str:
    return _page(
        f"{_navbar(user)}\n"
        '<div class="container-fluid">\n'
        f'<h1 class="text-center text-primary">{escape(str(product["title"]))}</h1>\n'
        f"<p>Summary: {product['descriptionHtml']}</p>\n"
        f'<div class="row">\n<div class="col-md-6">\n{_details_html(details_status, details)}\n</div>\n'
        f'<div class="col-md-6">\n{_reviews_html(reviews_status, reviews)}\n</div>\n</div>\n'
        "</div>"
    )
