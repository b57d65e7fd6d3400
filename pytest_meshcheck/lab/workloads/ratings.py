"""Bookinfo's ratings service: stars per reviewer on port 9080.

Like the upstream Node.js app, ``SERVICE_VERSION`` selects the misbehaving variants Istio's docs
use: ``v-unavailable`` answers 503, ``v-faulty`` answers 503 half of the time and ``v-delayed``
takes 7 seconds half of the time; ``v-unhealthy`` fails its health check.
"""

from __future__ import annotations

import json
import random
import re
import threading

from pytest_meshcheck.lab.contract import WorkloadContext
from pytest_meshcheck.lab.httpserve import Request, Response
from pytest_meshcheck.lab.workloads.base import HttpWorkload, image_version, json_response

PORT = 9080
_RATINGS_PATH = re.compile(r"^/ratings/([^/]*)$")
DEFAULT_RATINGS: dict[str, int] = {"Reviewer1": 5, "Reviewer2": 4}
#: How long ``v-delayed`` holds a response, as upstream.
DELAYED_SECONDS = 7.0


class Ratings(HttpWorkload):
    server_name = "ratings"

    def __init__(self, ctx: WorkloadContext, ports: tuple[int, ...]) -> None:
        super().__init__(ctx, ports)
        self.version = image_version(ctx, {"-v1": "v1", "-v2": "v2"}, "v1")
        self._posted: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._random = random.Random()

    def handle(self, request: Request) -> Response:
        if request.path == "/health":
            if self.version == "v-unhealthy":
                return json_response({"status": "Ratings is not healthy"}, 500)
            return json_response({"status": "Ratings is healthy"})
        match = _RATINGS_PATH.match(request.path)
        if match is None:
            return json_response({"error": "invalid request"}, 400)
        try:
            product_id = int(match.group(1))
        except ValueError:
            return json_response({"error": "please provide numeric product ID"}, 400)
        if request.method == "POST":
            return self._post(product_id, request.body)
        if request.method not in ("GET", "HEAD"):
            return json_response({"error": "invalid request"}, 400)
        misbehaving = self._misbehave(request)
        if misbehaving is not None:
            return misbehaving
        with self._lock:
            ratings = dict(self._posted.get(product_id, DEFAULT_RATINGS))
        return json_response({"id": product_id, "ratings": ratings})

    def _misbehave(self, request: Request) -> Response | None:
        unavailable = json_response({"error": "Service unavailable"}, 503)
        if self.version == "v-unavailable":
            return unavailable
        if self.version == "v-faulty" and self._random.random() < 0.5:
            return unavailable
        if self.version == "v-delayed" and self._random.random() < 0.5:
            request.cancelled.wait(DELAYED_SECONDS)
        return None

    def _post(self, product_id: int, body: bytes) -> Response:
        try:
            posted = json.loads(body or b"null")
        except ValueError:
            return json_response({"error": "please provide valid ratings JSON"}, 400)
        if not isinstance(posted, dict) or not all(isinstance(v, int) for v in posted.values()):
            return json_response({"error": "please provide valid ratings JSON"}, 400)
        ratings = {str(name): int(stars) for name, stars in posted.items()}
        with self._lock:
            self._posted[product_id] = ratings
        return json_response({"id": product_id, "ratings": ratings})


def ratings_factory(ctx: WorkloadContext) -> Ratings:
    return Ratings(ctx, (PORT,))
