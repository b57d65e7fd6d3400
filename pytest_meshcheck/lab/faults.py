"""The lab's catalogue of injectable regressions.

Each fault mimics a real mesh regression through the channels a real mesh would show it in
(pod specs, connection behaviour, HTTP status codes, metrics, Kiali's API), so a suite that catches
the fault on the lab catches the regression on EKS. The names are part of the public interface
(``--meshcheck-lab-faults``, ``meshcheck lab fault add``).
"""

from __future__ import annotations

from collections.abc import Mapping

FAULTS: Mapping[str, str] = {
    "injection-off": "the sidecar injection webhook leaves new pods unchanged",
    "mtls-not-enforced": "STRICT PeerAuthentication is ignored; plaintext is accepted",
    "plaintext-hop": "reviews-v2 -> ratings is sent without mTLS",
    "gateway-404": "the ingress gateway loses its routes and answers 404",
    "ratings-5xx": "ratings answers 503",
    "missing-edge": "telemetry for reviews-v3 -> ratings is absent",
    "proxy-skew": "new pods get a proxy two minor versions behind istiod",
    "slow-reviews": "reviews takes 400 ms longer to answer",
    "kiali-stale": "Kiali's graph stops updating",
    "upgrade-drops": "pods being replaced drop in-flight requests instead of draining",
}


def unknown_faults(names: tuple[str, ...] | list[str]) -> list[str]:
    """The names that are not in the catalogue, in the order given."""
    return [name for name in names if name not in FAULTS]
