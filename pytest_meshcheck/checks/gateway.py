"""Requests through the ingress gateway, as a user on the internet would make them."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

TITLE = "<title>Simple Bookstore App</title>"

_SERVED_BY = re.compile(r"Reviews served by:(?:\s|<[^>]*>)*(reviews-(v\d+)[-a-z0-9]*)")


@dataclass(frozen=True, kw_only=True)
class GatewayResponse:
    url: str
    status: int
    headers: dict[str, str]
    body: str
    seconds: float
    error: str = ""

    def evidence(self) -> dict[str, object]:
        return {
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 4),
            "headers": self.headers,
            "body (first 2 KiB)": self.body[:2048],
        }


def get(base_url: str, path: str, *, timeout: float = 10.0, host: str = "") -> GatewayResponse:
    """One GET; a connection failure is a response with status 0 and the error, not an exception."""
    import requests

    url = f"{base_url.rstrip('/')}/{path.lstrip('/')}"
    headers = {"Host": host} if host else {}
    started = time.monotonic()
    try:
        response = requests.get(url, timeout=timeout, headers=headers, allow_redirects=False)
    except requests.RequestException as exc:
        return GatewayResponse(
            url=url, status=0, headers={}, body="", seconds=time.monotonic() - started, error=str(exc)
        )
    return GatewayResponse(
        url=url,
        status=response.status_code,
        headers=dict(response.headers),
        body=response.text,
        seconds=time.monotonic() - started,
    )


def wait_for_route(base_url: str, path: str, *, timeout: float) -> GatewayResponse:
    """Poll ``path`` until it answers 200 or ``timeout`` passes (routes reach gateways a moment
    after they are applied); return the last response either way, for the check to judge."""
    deadline = time.monotonic() + timeout
    last = get(base_url, path)
    while last.status != 200 and time.monotonic() < deadline:
        time.sleep(1.0)
        last = get(base_url, path)
    return last


def reviews_version(html: str) -> str | None:
    """Which reviews version rendered a product page (from "Reviews served by: reviews-vN-...")."""
    match = _SERVED_BY.search(html)
    return match.group(2) if match else None


def sample_reviews_versions(
    base_url: str, *, requests_count: int
) -> tuple[Counter[str], list[GatewayResponse]]:
    """Versions seen over ``requests_count`` product pages, and the responses that were not 200."""
    seen: Counter[str] = Counter()
    bad: list[GatewayResponse] = []
    for _ in range(requests_count):
        response = get(base_url, "/productpage")
        if response.status != 200:
            bad.append(response)
            continue
        seen[reviews_version(response.body) or "unknown"] += 1
    return seen, bad
