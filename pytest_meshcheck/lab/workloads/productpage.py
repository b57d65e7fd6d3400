"""Bookinfo's productpage (the front end) on port 9080.

It calls details and reviews for every ``/productpage`` render, as upstream does: details once
with a 3 s timeout, reviews up to twice with 3 s each (the upstream "bug" Istio's fault injection
task demonstrates). Failures turn into the upstream error sentences on a 200 page. Signing in
(``POST /login``) stores the user in a cookie and sends it on as ``end-user``, which is what
Istio's header-based routing task matches on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qs

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import Request, Response
from pytest_meshcheck.lab.workloads import productpage_html
from pytest_meshcheck.lab.workloads.base import (
    HttpWorkload,
    env_port,
    env_value,
    forwarded_headers,
    json_response,
    text_response,
)
from pytest_meshcheck.lab.workloads.outbound import CallFailed

PORT = 9080
BACKEND_TIMEOUT = 3.0
REVIEWS_ATTEMPTS = 2
SESSION_COOKIE = "session"
PRODUCT: dict[str, Any] = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
        "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest "
        "and one of his most farcical comedies, with a major part of the humour coming from slapstick "
        "and mistaken identity, in addition to puns and word play."
    ),
}
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Sorry, product ratings are currently unavailable for this book."
_PRODUCT_PATH = re.compile(r"^/api/v1/products/([^/]+)(?:/(reviews|ratings))?$")


class Backend:
    """One upstream service productpage calls, with the address rules of the upstream app."""

    def __init__(self, ctx: WorkloadContext, name: str, endpoint: str) -> None:
        domain = ctx.env.get("SERVICES_DOMAIN")
        self.host = env_value(ctx, f"{name.upper()}_HOSTNAME", name) + (f".{domain}" if domain else "")
        self.port = env_port(ctx, f"{name.upper()}_SERVICE_PORT", 9080)
        self.endpoint = endpoint

    def describe(self) -> str:
        return f"http://{self.host}:{self.port}/{self.endpoint}"


class ProductPage(HttpWorkload):
    server_name = "productpage"

    def __init__(self, ctx: WorkloadContext, ports: tuple[int, ...]) -> None:
        super().__init__(ctx, ports)
        self.details = Backend(ctx, "details", "details")
        self.reviews = Backend(ctx, "reviews", "reviews")
        self.ratings = Backend(ctx, "ratings", "ratings")

    def handle(self, request: Request) -> Response:
        path = request.path
        if path in ("/", "/index.html"):
            return self._index()
        if path == "/health":
            return text_response("Product page is healthy")
        if path == "/productpage":
            return self._product_page(request)
        if path == "/login" and request.method == "POST":
            return self._login(request)
        if path == "/logout":
            return _redirect("/productpage", cookie=f"{SESSION_COOKIE}=; Max-Age=0; Path=/")
        if path == "/api/v1/products":
            return json_response([PRODUCT])
        match = _PRODUCT_PATH.match(path)
        if match is not None:
            return self._api(request, match.group(1), match.group(2))
        return text_response("Not Found\n", 404, "text/html; charset=utf-8")

    def _index(self) -> Response:
        services = [
            ("productpage", f"http://{self.ctx.hostname}:{PORT}"),
            ("details", self.details.describe()),
            ("reviews", self.reviews.describe()),
            ("ratings", self.ratings.describe()),
        ]
        return text_response(productpage_html.index_page(services), content_type="text/html; charset=utf-8")

    def _product_page(self, request: Request) -> Response:
        headers = self._outgoing_headers(request)
        details_status, details = self._fetch_details(0, headers)
        reviews_status, reviews = self._fetch_reviews(0, headers)
        page = productpage_html.product_page(
            product=PRODUCT,
            user=_session_user(request),
            details_status=details_status,
            details=details,
            reviews_status=reviews_status,
            reviews=reviews,
        )
        return text_response(page, content_type="text/html; charset=utf-8")

    def _api(self, request: Request, raw_id: str, part: str | None) -> Response:
        try:
            product_id = int(raw_id)
        except ValueError:
            return json_response({"error": "please provide numeric product id"}, 400)
        headers = self._outgoing_headers(request)
        if part == "reviews":
            status, body = self._fetch_reviews(product_id, headers)
        elif part == "ratings":
            status, body = self._fetch(self.ratings, product_id, headers, RATINGS_UNAVAILABLE, 1)
        else:
            status, body = self._fetch_details(product_id, headers)
        return json_response(body, status)

    def _fetch_details(self, product_id: int, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        return self._fetch(self.details, product_id, headers, DETAILS_UNAVAILABLE, 1)

    def _fetch_reviews(self, product_id: int, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        return self._fetch(self.reviews, product_id, headers, REVIEWS_UNAVAILABLE, REVIEWS_ATTEMPTS)

    def _fetch(
        self,
        backend: Backend,
        product_id: int,
        headers: list[tuple[str, str]],
        unavailable: str,
        attempts: int,
    ) -> tuple[int, dict[str, Any]]:
        status = 500
        for _ in range(attempts):
            try:
                reply = self.client.get(
                    backend.host,
                    backend.port,
                    f"/{backend.endpoint}/{product_id}",
                    headers=headers,
                    timeout=BACKEND_TIMEOUT,
                )
            except CallFailed as error:
                self.ctx.log.write(f"Error calling {backend.describe()}: {error}", stream="stderr")
                status = 500
                continue
            status = reply.status
            if reply.status == 200:
                try:
                    payload = reply.json()
                except ValueError:
                    status = 500
                    continue
                if isinstance(payload, dict):
                    return 200, payload
                status = 500
        return status, {"error": unavailable}

    def _outgoing_headers(self, request: Request) -> list[tuple[str, str]]:
        headers = [(name, value) for name, value in forwarded_headers(request) if name.lower() != "end-user"]
        user = _session_user(request)
        if user:
            headers.append(("end-user", user))
        return headers

    def _login(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        user = (form.get("username") or [""])[0]
        token = base64.urlsafe_b64encode(json.dumps({"user": user}).encode()).decode()
        return _redirect("/productpage", cookie=f"{SESSION_COOKIE}={token}; Path=/; HttpOnly")


def _redirect(location: str, *, cookie: str) -> Response:
    return Response(
        status=302,
        headers=[
            ("Location", location),
            ("Set-Cookie", cookie),
            ("Content-Type", "text/html; charset=utf-8"),
        ],
        body=f'<a href="{location}">{location}</a>\n'.encode(),
    )


def _session_user(request: Request) -> str:
    for header in request.headers.get_all("Cookie"):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name != SESSION_COOKIE or not value:
                continue
            try:
                session = json.loads(base64.urlsafe_b64decode(value.encode()))
            except (ValueError, binascii.Error):
                return ""
            user = session.get("user") if isinstance(session, dict) else None
            return user if isinstance(user, str) else ""
    return ""


def productpage_factory(ctx: WorkloadContext) -> ProductPage:
    return ProductPage(ctx, (PORT,))
