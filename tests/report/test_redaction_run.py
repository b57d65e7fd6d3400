"""No secret of a run appears in any file the run wrote under the reports dir (nor its JUnit XML).

The run's secrets reach it three ways: the bearer token in the kubeconfig the provider wrote, an
AWS secret in the environment, and a Kiali token a check registers when it learns it. The checks
then leak them every way a careless check could: printed, logged, attached, in a finding's
message, in a direct ``allure.attach`` that bypasses our API.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from .meshproject import MeshProject

LEAKY_CHECKS = '''
import logging
import os

import allure
import pytest

from pytest_meshcheck.errors import CheckFailed
from pytest_meshcheck.report import attach_evidence, register_secret

pytestmark = pytest.mark.meshcheck_graph
KIALI_TOKEN = os.environ["KIALI_VALUE_FOR_TEST"]


def _token(handle):
    text = handle.kubeconfig.read_text()
    return text.split("token: ")[1].split("}")[0].strip()


def test_graph_has_edges(meshcheck_cluster):
    token = _token(meshcheck_cluster)
    register_secret(KIALI_TOKEN, "kiali token")
    print("calling kiali with", token, KIALI_TOKEN, os.environ["AWS_SECRET_ACCESS_KEY"])
    logging.getLogger("meshcheck.test").warning("Authorization: Bearer %s", token)
    attach_evidence("request", f"GET /api/namespaces/graph\\nAuthorization: Bearer {token}", kind="text")
    attach_evidence("env", {"aws": os.environ["AWS_SECRET_ACCESS_KEY"], "kiali": KIALI_TOKEN}, kind="json")
    allure.attach(f"raw {token} {KIALI_TOKEN}", name="raw", attachment_type=allure.attachment_type.TEXT)
    raise CheckFailed(f"edge missing; kiali answered for token {token} / {KIALI_TOKEN}")


def test_mtls_edges(meshcheck_cluster):
    token = _token(meshcheck_cluster)
    assert token == "something else", f"token {token} rejected"
'''


def _files_under(*roots: Path) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(path for path in root.rglob("*") if path.is_file())
    return found


@pytest.mark.parametrize("distributed", [False, True], ids=["single", "xdist"])
def test_no_secret_anywhere_under_reports_dir(
    mesh_project: MeshProject, distributed: bool
) -> None:
    kiali_token = "kiali-" + mesh_project.token[4:20]
    mesh_project.monkeypatch.setenv("KIALI_VALUE_FOR_TEST", kiali_token)
    mesh_project.pytester.makepyfile(test_leaky=LEAKY_CHECKS)
    junit = mesh_project.reports / "junit.xml"
    extra = ["-n", "2"] if distributed else []
    result = mesh_project.run(f"--junitxml={junit}", "-rA", *extra)
    result.assert_outcomes(failed=2)

    secrets = [mesh_project.token, mesh_project.aws_secret, kiali_token]
    forms = [form for secret in secrets for form in (secret, base64.b64encode(secret.encode()).decode())]
    # pytest truncates long reprs in the middle: a secret's head or tail alone is a leak too.
    forms += [part for secret in secrets for part in (secret[:12], secret[-12:])]
    files = _files_under(mesh_project.reports, junit)
    assert len(files) >= 8, [str(path) for path in files]
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form.encode() not in data, f"{form[:8]}... leaked into {path}"
    # The leaks were there to be caught: the report says what was removed, in place.
    everything = b"".join(path.read_bytes() for path in files)
    assert b"[REDACTED kubeconfig admin token]" in everything
    assert b"[REDACTED kiali token]" in everything
    assert b"[REDACTED AWS_SECRET_ACCESS_KEY]" in everything
    assert mesh_project.token not in result.stdout.str()
