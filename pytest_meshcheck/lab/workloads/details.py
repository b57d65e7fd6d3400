"""Bookinfo's details service (v1): the book's publishing facts on port 9080."""

from __future__ import annotations

import re

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import Request, Response
from pytest_meshcheck.lab.workloads.base import HttpWorkload, json_response

PORT = 9080
_DETAILS_PATH = re.compile(r"^/details/([^/]*)$")


def book_details(product_id: int) -> dict[str, object]:
    """The one book the upstream sample knows, under any numeric id."""
    return {
        "id": product_id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


class Details(HttpWorkload):
    server_name = "details"

    def user_agent(self) -> str:
        return "Ruby"

    def handle(self, request: Request) -> Response:
        if request.path == "/health":
            return json_response({"status": "Details is healthy"})
        match = _DETAILS_PATH.match(request.path)
        if match is None or request.method not in ("GET", "HEAD"):
            return json_response({"error": "Unsupported request"}, 400)
        try:
            product_id = int(match.group(1))
        except ValueError:
            return json_response({"error": "please provide numeric product id"}, 400)
        return json_response(book_details(product_id))


def details_factory(ctx: WorkloadContext) -> Details:
    return Details(ctx, (PORT,))
