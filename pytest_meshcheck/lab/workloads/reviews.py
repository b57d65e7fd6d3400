"""Bookinfo's reviews service, v1/v2/v3, on port 9080.

The versions differ only in configuration, as the upstream images do: v1 has ratings disabled and
never calls the ratings service; v2 calls it and colours stars black, v3 red. ``ENABLE_RATINGS``
and ``STAR_COLOR`` in the pod's env override what the image was built with. The ratings call's
timeout depends on the colour, as upstream (10 s for black, 2.5 s otherwise): Istio's fault
injection task relies on that difference.
"""

from __future__ import annotations

import re

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import Request, Response
from pytest_meshcheck.lab.workloads.base import (
    HttpWorkload,
    env_port,
    env_value,
    forwarded_headers,
    image_version,
    json_response,
)
from pytest_meshcheck.lab.workloads.outbound import CallFailed

PORT = 9080
RATINGS_PORT = 9080
_REVIEWS_PATH = re.compile(r"^/reviews/([^/]*)$")
_VERSIONS = {"-v1": "v1", "-v2": "v2", "-v3": "v3"}
_BUILT_WITH: dict[str, tuple[bool, str]] = {
    "v1": (False, "black"),
    "v2": (True, "black"),
    "v3": (True, "red"),
}
REVIEW_TEXTS: tuple[tuple[str, str], ...] = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays "
        "by Shakespeare.",
    ),
)
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"


class Reviews(HttpWorkload):
    server_name = "reviews"

    def __init__(self, ctx: WorkloadContext, ports: tuple[int, ...]) -> None:
        super().__init__(ctx, ports)
        self.version = image_version(ctx, _VERSIONS, "v1")
        built_ratings, built_color = _BUILT_WITH.get(self.version, (False, "black"))
        enable = ctx.env.get("ENABLE_RATINGS")
        self.ratings_enabled = built_ratings if enable is None else enable.strip().lower() == "true"
        self.star_color = env_value(ctx, "STAR_COLOR", built_color)
        domain = ctx.env.get("SERVICES_DOMAIN")
        self.ratings_host = env_value(ctx, "RATINGS_HOSTNAME", "ratings") + (f".{domain}" if domain else "")
        self.ratings_port = env_port(ctx, "RATINGS_SERVICE_PORT", RATINGS_PORT)
        self.ratings_timeout = 10.0 if self.star_color == "black" else 2.5
        self.pod_name = env_value(ctx, "HOSTNAME", ctx.hostname)
        self.cluster_name = env_value(ctx, "CLUSTER_NAME", "null")

    def user_agent(self) -> str:
        return "Jersey/2.x (HttpUrlConnection 17)"

    def handle(self, request: Request) -> Response:
        if request.path == "/health":
            return json_response({"status": "Reviews is healthy"})
        match = _REVIEWS_PATH.match(request.path)
        if match is None or request.method not in ("GET", "HEAD"):
            return json_response({"error": "Not Found"}, 404)
        product_id = match.group(1)
        stars: dict[str, int] = {}
        if self.ratings_enabled:
            stars = self._ratings(product_id, request)
        return json_response(self._document(product_id, stars))

    def _ratings(self, product_id: str, request: Request) -> dict[str, int]:
        """Stars per reviewer, empty when ratings cannot be had (the caller renders that)."""
        try:
            reply = self.client.get(
                self.ratings_host,
                self.ratings_port,
                f"/ratings/{product_id}",
                headers=forwarded_headers(request),
                timeout=self.ratings_timeout,
            )
        except CallFailed as error:
            self.ctx.log.write(f"Error: unable to contact {self.ratings_host} got exception {error}")
            return {}
        if reply.status != 200:
            self.ctx.log.write(f"Error: unable to contact {self.ratings_host} got status of {reply.status}")
            return {}
        try:
            ratings = reply.json().get("ratings", {})
        except (ValueError, AttributeError):
            return {}
        return {name: int(value) for name, value in ratings.items() if isinstance(value, int)}

    def _document(self, product_id: str, stars: dict[str, int]) -> dict[str, object]:
        reviews: list[dict[str, object]] = []
        for reviewer, text in REVIEW_TEXTS:
            review: dict[str, object] = {"reviewer": reviewer, "text": text}
            if self.ratings_enabled:
                if reviewer in stars:
                    review["rating"] = {"stars": stars[reviewer], "color": self.star_color}
                else:
                    review["rating"] = {"error": RATINGS_UNAVAILABLE}
            reviews.append(review)
        return {
            "id": product_id,
            "podname": self.pod_name,
            "clustername": self.cluster_name,
            "reviews": reviews,
        }


def reviews_factory(ctx: WorkloadContext) -> Reviews:
    return Reviews(ctx, (PORT,))
