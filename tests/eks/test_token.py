"""The EKS token: a presigned, verifiable STS URL naming the cluster; its ExecCredential form."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.credentials import Credentials

from pytest_meshcheck.providers.eks import kubeconfig
from pytest_meshcheck.providers.eks.token import TokenSource, decode, exec_credential, mint

from .sigv4 import expected_signature, signature_of

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = Credentials("AKIAIOSFODNN7EXAMPLE", SECRET)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_token_is_an_unpadded_base64url_presigned_sts_get() -> None:
    token = mint(KEYS, "gate", "eu-west-1").value
    assert token.startswith("k8s-aws-v1.")
    assert re.fullmatch(r"k8s-aws-v1\.[A-Za-z0-9_-]+", token), "base64url without padding"
    url = decode(token)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "sts.eu-west-1.amazonaws.com", "/")
    params = query(url)
    assert params["Action"] == "GetCallerIdentity"
    assert params["Version"] == "2011-06-15"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "60"
    assert params["X-Amz-Credential"].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert params["X-Amz-Credential"].endswith("/eu-west-1/sts/aws4_request")
    assert "x-k8s-aws-id" in params["X-Amz-SignedHeaders"].split(";")
    assert "host" in params["X-Amz-SignedHeaders"].split(";")


def test_signature_verifies_and_binds_the_cluster_name() -> None:
    url = decode(mint(KEYS, "gate", "us-east-1").value)
    assert signature_of(url) == expected_signature(url, {"x-k8s-aws-id": "gate"}, SECRET)
    assert signature_of(url) != expected_signature(url, {"x-k8s-aws-id": "other"}, SECRET)
    assert signature_of(url) != expected_signature(url, {"x-k8s-aws-id": "gate"}, SECRET[:-1] + "X")


def test_session_credentials_are_carried_and_signed() -> None:
    temporary = Credentials("ASIAEXAMPLE", SECRET, "session-token/with+odd=chars")
    url = decode(mint(temporary, "gate", "us-east-1").value)
    assert query(url)["X-Amz-Security-Token"] == "session-token/with+odd=chars"
    assert signature_of(url) == expected_signature(url, {"x-k8s-aws-id": "gate"}, SECRET)


def test_china_regions_use_their_sts_domain() -> None:
    assert (
        urlsplit(decode(mint(KEYS, "gate", "cn-north-1").value)).netloc == "sts.cn-north-1.amazonaws.com.cn"
    )


def test_decode_rejects_foreign_tokens() -> None:
    with pytest.raises(ValueError, match="prefix"):
        decode("eyJhbGciOi.not-ours")


def test_exec_credential_shape() -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    token = mint(KEYS, "gate", "us-east-1", moment)
    credential = json.loads(exec_credential(token))
    assert credential == {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {"expirationTimestamp": "2026-05-01T12:14:00Z", "token": token.value},
    }


def test_token_source_refreshes_before_the_fifteen_minutes_end() -> None:
    start = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    moments = iter([start, start + timedelta(minutes=12), start + timedelta(minutes=13, seconds=1)])
    calls: list[int] = []

    def credentials() -> Credentials:
        calls.append(1)
        return KEYS

    source = TokenSource(credentials, "gate", "us-east-1", now=lambda: next(moments))
    first = source.get()
    assert source.get() is first  # 12 minutes in: still good
    third = source.get()  # 13 min 1 s: within a minute of the reported expiry, so re-minted
    assert third is not first
    assert third.expires_at == start + timedelta(minutes=27, seconds=1)
    assert len(calls) == 2


def test_kubernetes_client_authenticates_through_the_exec_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Python client runs the kubeconfig's exec command (our `eks token` handler) and
    sends the token it printed as the bearer token."""
    from kubernetes import client, config

    script = tmp_path / "meshcheck"
    script.write_text(
        f"#!{sys.executable}\n"
        "import argparse, sys\n"
        "from pytest_meshcheck.providers.eks.commands import add_eks_commands\n"
        "parser = argparse.ArgumentParser()\n"
        "add_eks_commands(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("MESHCHECK_HOME", str(tmp_path / "home"))
    path = kubeconfig.write(
        tmp_path / "kubeconfig",
        kubeconfig.render(
            cluster="gate",
            region="us-east-1",
            endpoint="https://127.0.0.1:6443",
            ca_data="",
            command=str(script),
        ),
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)  # type: ignore[no-untyped-call]
    bearer = configuration.api_key["BearerToken"]
    assert bearer.startswith("Bearer k8s-aws-v1.")
    url = decode(bearer.removeprefix("Bearer "))
    assert signature_of(url) == expected_signature(url, {"x-k8s-aws-id": "gate"}, SECRET)
