"""A Bookinfo-shaped traffic set as the sidecars of each pod would export it (both reporters)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from istio_series import Peer, exposition, key, request_labels

GATEWAY = Peer(
    "istio-ingressgateway",
    "istio-system",
    "istio-ingressgateway",
    "latest",
    "istio-ingressgateway-service-account",
)
PRODUCTPAGE = Peer("productpage-v1", "bookinfo", "productpage", "v1", "bookinfo-productpage")
DETAILS = Peer("details-v1", "bookinfo", "details", "v1", "bookinfo-details")
REVIEWS = {v: Peer(f"reviews-{v}", "bookinfo", "reviews", v, "bookinfo-reviews") for v in ("v1", "v2", "v3")}
RATINGS = Peer("ratings-v1", "bookinfo", "ratings", "v1", "bookinfo-ratings")
SERVICE_OF = {"productpage": "productpage", "details": "details", "reviews": "reviews", "ratings": "ratings"}


@dataclass(frozen=True)
class Call:
    source: Peer
    dest: Peer
    #: requests per second with mTLS, and without
    mtls_rate: float = 2.0
    plain_rate: float = 0.0
    code: int = 200


def bookinfo_calls() -> list[Call]:
    return [
        Call(GATEWAY, PRODUCTPAGE),
        Call(PRODUCTPAGE, DETAILS),
        *(Call(PRODUCTPAGE, REVIEWS[v]) for v in ("v1", "v2", "v3")),
        Call(REVIEWS["v2"], RATINGS),
        Call(REVIEWS["v3"], RATINGS),
    ]


@dataclass
class TrafficSet:
    """Counters that grow at each call's rate from the moment the call is added."""

    calls: dict[tuple[str, str], tuple[Call, float]] = field(default_factory=dict)

    def add(self, call: Call) -> None:
        self.calls[(call.source.workload, call.dest.workload)] = (call, time.time())

    def _series(self, workload: str) -> Iterator[tuple[tuple[tuple[str, str], ...], float]]:
        now = time.time()
        for call, since in list(self.calls.values()):
            elapsed = now - since
            for reporter, peer in (("source", call.source), ("destination", call.dest)):
                if peer.workload != workload:
                    continue
                for mtls, rate in ((True, call.mtls_rate), (False, call.plain_rate)):
                    if rate <= 0:
                        continue
                    labels = request_labels(
                        call.source, call.dest, SERVICE_OF[call.dest.app], reporter=reporter,
                        code=call.code, mtls=mtls,
                    )  # fmt: skip
                    yield key(labels), rate * elapsed

    def exposition_for(self, workload: str) -> str:
        return exposition("istio_requests_total", dict(self._series(workload)))
