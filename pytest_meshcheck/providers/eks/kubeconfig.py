"""The kubeconfig of an EKS cluster: endpoint and CA from EKS, a user that runs our token command.

An exec credential plugin (rather than a token pasted into the file) keeps the file free of
secrets and lets kubectl and the Python client fetch a fresh token whenever the last one expires.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

from pytest_meshcheck.providers.eks.token import EXEC_API_VERSION


def token_command() -> str:
    """The ``meshcheck`` script of this installation, falling back to whatever PATH finds."""
    beside = Path(sys.executable).with_name("meshcheck")
    if beside.exists():
        return str(beside)
    return shutil.which("meshcheck") or "meshcheck"


def render(
    *, cluster: str, region: str, endpoint: str, ca_data: str, profile: str = "", command: str = ""
) -> dict[str, object]:
    context = f"meshcheck-eks-{cluster}"
    env = [{"name": "AWS_PROFILE", "value": profile}] if profile else None
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": command or token_command(),
                        "args": ["eks", "token", "--name", cluster, "--region", region],
                        "env": env,
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


def write(path: Path, config: dict[str, object]) -> Path:
    """Write owner-readable only: it names the cluster and how to authenticate against it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return path
