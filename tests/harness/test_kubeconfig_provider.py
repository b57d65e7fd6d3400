"""The kubeconfig provider's failure modes: each gives one clear error, no traceback soup."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from pytest_meshcheck.errors import ClusterUnreachable, ProviderError
from pytest_meshcheck.providers.kubeconfig import KubeconfigProvider
from pytest_meshcheck.settings import default_settings


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(path: Path, server: str, contexts: tuple[str, ...] = ("lab",)) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
                "current-context": contexts[0],
            }
        )
    )
    return path


def provider(**raw: str) -> KubeconfigProvider:
    return KubeconfigProvider(default_settings(cluster="kubeconfig", **raw))


def test_missing_kubeconfig_names_the_file_and_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProviderError, match=r"nope\.yaml does not exist.*--meshcheck-kubeconfig"):
        provider(kubeconfig=str(missing)).provision()


def test_broken_kubeconfig_is_reported_as_such(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [unclosed\n")
    with pytest.raises(ProviderError, match=r"broken\.yaml"):
        provider(kubeconfig=str(broken)).provision()


def test_missing_context_lists_the_ones_that_exist(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k.yaml", "https://127.0.0.1:1", contexts=("dev", "staging"))
    with pytest.raises(ProviderError, match=r"context 'prod' is not in .*contexts there: dev, staging"):
        provider(kubeconfig=str(path), context="prod").provision()


def test_unreachable_cluster_is_cluster_unreachable(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k.yaml", f"https://127.0.0.1:{closed_port()}")
    with pytest.raises(ClusterUnreachable, match="did not answer"):
        provider(kubeconfig=str(path)).provision()
