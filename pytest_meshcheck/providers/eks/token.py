"""The bearer token EKS accepts: a presigned STS GetCallerIdentity URL, minted in-process.

The API server's authenticator replays the URL against STS to learn who is calling, and checks
that the signed ``x-k8s-aws-id`` header names *this* cluster, so a token for one cluster is useless
against another. EKS accepts the token for 15 minutes after its signing time, whatever the URL's
own ``X-Amz-Expires`` says; we report it as expiring a minute earlier so clients refresh in time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_meshcheck.providers.eks.aws import dns_suffix

PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
URL_EXPIRES_S = 60
#: EKS honours a token for 15 minutes; report it stale one minute early.
VALIDITY = timedelta(minutes=14)
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime


def sts_url(region: str) -> str:
    """The regional STS endpoint (EKS validates the host, so AWS_ENDPOINT_URL does not apply)."""
    return f"https://sts.{region}.{dns_suffix(region)}/?Action=GetCallerIdentity&Version=2011-06-15"


def presign(credentials: Any, cluster: str, region: str) -> str:
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="GET", url=sts_url(region), headers={CLUSTER_HEADER: cluster})
    SigV4QueryAuth(credentials, "sts", region, expires=URL_EXPIRES_S).add_auth(request)
    return str(request.url)


def encode(url: str) -> str:
    return PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def decode(token: str) -> str:
    """The presigned URL inside a token (for tests and for debugging a 401)."""
    if not token.startswith(PREFIX):
        raise ValueError(f"not an EKS token (no {PREFIX!r} prefix)")
    body = token[len(PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def mint(credentials: Any, cluster: str, region: str, now: datetime | None = None) -> Token:
    signed_at = now or datetime.now(UTC)
    return Token(encode(presign(credentials, cluster, region)), signed_at + VALIDITY)


def exec_credential(token: Token) -> str:
    """The JSON an exec credential plugin prints; the expiry makes clients call it again."""
    return json.dumps(
        {
            "kind": "ExecCredential",
            "apiVersion": EXEC_API_VERSION,
            "spec": {},
            "status": {
                "expirationTimestamp": token.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "token": token.value,
            },
        }
    )


class TokenSource:
    """Hands out a token, minting a new one when the current one is about to expire.

    For in-process clients during long runs (load tests, upgrades) that would otherwise fail with
    401 after 15 minutes.
    """

    def __init__(
        self,
        credentials: Callable[[], Any],
        cluster: str,
        region: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        margin: timedelta = timedelta(minutes=1),
    ) -> None:
        self._credentials = credentials
        self._cluster = cluster
        self._region = region
        self._now = now
        self._margin = margin
        self._current: Token | None = None

    def get(self) -> Token:
        moment = self._now()
        if self._current is None or moment >= self._current.expires_at - self._margin:
            self._current = mint(self._credentials(), self._cluster, self._region, moment)
        return self._current
