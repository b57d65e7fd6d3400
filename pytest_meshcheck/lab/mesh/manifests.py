"""Render the lab's Istio install manifests (``fixtures/istio/``) for a version and revision.

The files are plain ``string.Template`` documents so that the harness's manifest installer, which
must not import the lab, renders them the same way: substitute ``VERSION``, ``HUB``, ``REVISION``
("default" for an unrevisioned install), ``REVISION_SUFFIX`` ("" or "-<rev>") and
``NATIVE_SIDECARS`` ("true"/"false"). This module does exactly that for the lab's own install path
(``meshcheck lab up --mesh``) and documents the order the files are applied in.
"""

from __future__ import annotations

import string
from pathlib import Path

from pytest_meshcheck.lab.mesh.injector import is_default_revision

DEFAULT_HUB = "docker.io/istio"
#: Applied in this order; the webhook file depends on the revision.
CONTROL_PLANE_FILES = ("namespace.yaml", "crds.yaml", "istiod.yaml")
DEFAULT_WEBHOOK_FILE = "injector-webhook.yaml"
REVISION_WEBHOOK_FILE = "injector-webhook-revision.yaml"
GATEWAY_FILE = "ingressgateway.yaml"


def manifests_dir() -> Path:
    """``fixtures/istio`` in a checkout, ``pytest_meshcheck/data/istio`` in the wheel."""
    package = Path(__file__).resolve().parents[2]
    installed = package / "data" / "istio"
    return installed if installed.is_dir() else package.parent / "fixtures" / "istio"


def template_values(
    version: str, revision: str = "", *, hub: str = DEFAULT_HUB, native_sidecars: bool = False
) -> dict[str, str]:
    default = is_default_revision(revision)
    return {
        "VERSION": version,
        "HUB": hub.rstrip("/"),
        "REVISION": "default" if default else revision,
        "REVISION_SUFFIX": "" if default else f"-{revision}",
        "NATIVE_SIDECARS": "true" if native_sidecars else "false",
    }


def install_files(revision: str = "", *, gateway: bool = True) -> list[str]:
    webhook = DEFAULT_WEBHOOK_FILE if is_default_revision(revision) else REVISION_WEBHOOK_FILE
    return [*CONTROL_PLANE_FILES, webhook, *([GATEWAY_FILE] if gateway else [])]


def render(
    version: str,
    revision: str = "",
    *,
    hub: str = DEFAULT_HUB,
    native_sidecars: bool = False,
    gateway: bool = True,
    directory: Path | None = None,
) -> str:
    """One multi-document YAML stream installing Istio ``version`` (optionally as a revision)."""
    source = directory or manifests_dir()
    values = template_values(version, revision, hub=hub, native_sidecars=native_sidecars)
    documents = []
    for name in install_files(revision, gateway=gateway):
        text = (source / name).read_text()
        documents.append(string.Template(text).substitute(values).strip() + "\n")
    return "---\n".join(documents)
