"""Control-plane convergence: how long after a VirtualService is applied traffic follows it.

The route is Istio's "request routing" task in miniature: requests of the signed-in user
``jason`` (productpage forwards the user as the ``end-user`` header) go to reviews v3; nobody
else's route changes, so suites sampling reviews versions at the same time see what they always
see. A DestinationRule with only the ``v3`` subset comes with it (no TLS settings, so auto mTLS
stays in charge). Both are benchmark-named and deleted afterwards, also when the measurement fails.

Timing: a session signs in as jason through the gateway and first checks that jason still reaches
other versions (else some other route is in place and there is nothing to time). The
DestinationRule is applied, then the clock starts and the VirtualService is applied, and the
session requests /productpage until ``STREAK`` answers in a row come from reviews v3. Convergence
is the send time of the first answer of that streak minus the moment the VirtualService was sent. Before the
route, v3 answers a third of the requests by chance, so a streak can start at most a few lucky
requests early; one request's duration is recorded as the resolution.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.checks.gateway import reviews_version
from pytest_meshcheck.errors import CheckFailed, EnvironmentProblem, ReadinessTimeout
from pytest_meshcheck.kube.apply import apply_documents, delete_documents
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.wait import Progress, wait_until

ROUTE_NAME = "meshcheck-bench-reviews"
USER = "jason"
SUBSET = "v3"
#: Answers in a row from v3 that count as "traffic follows the route" ((1/3)^10 by chance).
STREAK = 10
REQUEST_TIMEOUT_S = 10.0
#: Pause between requests: enough to not spin, far below any convergence worth measuring.
POLL_INTERVAL_S = 0.05
#: Requests before the route that must include a version other than v3 ((1/3)^30 by chance).
BEFORE_SAMPLES = 30


def route_documents() -> list[dict[str, Any]]:
    """The DestinationRule (subset v3) and VirtualService (jason -> v3, everyone else unchanged)."""
    labels = {"meshcheck": "benchmark"}
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": ROUTE_NAME, "labels": labels},
            "spec": {"host": "reviews", "subsets": [{"name": SUBSET, "labels": {"version": SUBSET}}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": ROUTE_NAME, "labels": labels},
            "spec": {
                "hosts": ["reviews"],
                "http": [
                    {
                        "match": [{"headers": {"end-user": {"exact": USER}}}],
                        "route": [{"destination": {"host": "reviews", "subset": SUBSET}}],
                    },
                    {"route": [{"destination": {"host": "reviews"}}]},
                ],
            },
        },
    ]


@dataclass(kw_only=True)
class ConvergenceMeasurement:
    convergence_s: float | None = None
    resolution_s: float = 0.0
    requests: int = 0
    #: (seconds after the apply, reviews version or status) of each request, for evidence.
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "convergence_s": self.convergence_s,
            "resolution_s": self.resolution_s,
            "requests": self.requests,
            "route": f"end-user {USER} -> reviews {SUBSET}",
            "timeline": [{"at_s": round(at, 3), "served_by": seen} for at, seen in self.timeline[-200:]],
        }


def _signed_in_session(gateway_url: str) -> Any:
    import requests

    session = requests.Session()
    try:
        response = session.post(
            f"{gateway_url}/login", data={"username": USER, "passwd": USER}, allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
    except requests.RequestException as exc:
        raise CheckFailed(f"signing in as {USER} through the gateway failed: {exc}") from exc
    if response.status_code >= 400 or not session.cookies:
        raise CheckFailed(
            f"POST {gateway_url}/login as {USER} answered {response.status_code} without a session "
            "cookie: productpage cannot forward the end-user header the route matches on"
        )
    return session


def _served_by(session: Any, gateway_url: str) -> str:
    """Which reviews version rendered jason's product page (or what went wrong instead)."""
    import requests

    try:
        response = session.get(f"{gateway_url}/productpage", timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"error {type(exc).__name__}"
    if response.status_code != 200:
        return f"status {response.status_code}"
    return reviews_version(response.text) or "unknown"


def _check_not_routed_yet(session: Any, gateway_url: str) -> None:
    """Before the route, jason must also reach other versions; if every answer already comes from
    v3, something else routes him there and the apply would time nothing."""
    seen = [_served_by(session, gateway_url) for _ in range(BEFORE_SAMPLES)]
    if any(version not in (SUBSET, "unknown") and version.startswith("v") for version in seen):
        return
    raise EnvironmentProblem(
        f"before the benchmark's route was applied, {BEFORE_SAMPLES} product pages for end-user {USER} "
        f"were served by: {', '.join(sorted(set(seen)))}; convergence needs the default round-robin "
        "first (is another VirtualService for reviews in place?)"
    )


def measure_convergence(
    kube: Kube, *, gateway_url: str, app_namespace: str, timeout: float
) -> ConvergenceMeasurement:
    """Apply the route, time how long until jason's requests follow it, then remove the route."""
    session = _signed_in_session(gateway_url)
    _check_not_routed_yet(session, gateway_url)
    found = ConvergenceMeasurement()
    destination_rule, virtual_service = route_documents()
    durations: list[float] = []
    streak: list[float] = []
    try:
        apply_documents(kube, [destination_rule], namespace=app_namespace, timeout=timeout)
        applied = time.monotonic()
        apply_documents(kube, [virtual_service], namespace=app_namespace, timeout=timeout)

        def look() -> Progress:
            sent = time.monotonic()
            seen = _served_by(session, gateway_url)
            durations.append(time.monotonic() - sent)
            found.requests += 1
            found.timeline.append((sent - applied, seen))
            if seen == SUBSET:
                streak.append(sent)
            else:
                streak.clear()
            return Progress(
                len(streak) >= STREAK, f"{len(streak)} answers in a row from reviews {SUBSET} (last: {seen})"
            )

        try:
            wait_until(
                look,
                what=f"requests of end-user {USER} to follow the VirtualService to reviews {SUBSET}",
                timeout=timeout,
                interval=POLL_INTERVAL_S,
            )
        except ReadinessTimeout as exc:
            recent = ", ".join(seen for _, seen in found.timeline[-12:])
            raise CheckFailed(
                f"control-plane convergence: {exc.message}; the last answers came from: {recent}",
                evidence={
                    "requests after the apply": "\n".join(f"{at:8.3f}s {seen}" for at, seen in found.timeline)
                },
            ) from exc
        found.convergence_s = max(0.0, streak[0] - applied)
        found.resolution_s = statistics.median(durations)
        return found
    finally:
        delete_documents(kube, [virtual_service, destination_rule], namespace=app_namespace, timeout=timeout)
