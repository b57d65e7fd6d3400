"""An independent SigV4 query-string verifier (AWS's published algorithm), used to check tokens.

Written from the specification rather than with botocore's signer, so a bug in how the token is
signed cannot hide behind the same code checking it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(url: str, headers: dict[str, str], secret_key: str) -> str:
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    query = dict(params)
    signed = query["X-Amz-SignedHeaders"].split(";")
    all_headers = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    canonical_headers = "".join(f"{name}:{all_headers[name].strip()}\n" for name in signed)
    canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params))
    canonical_request = "\n".join(
        [
            "GET",
            parts.path or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    date, region, service, terminator = query["X-Amz-Credential"].split("/")[1:]
    scope = f"{date}/{region}/{service}/{terminator}"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, service, terminator):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signature_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
