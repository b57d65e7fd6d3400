"""Fixtures of the report tests."""

from __future__ import annotations

import os
import secrets

import pytest

from .meshproject import PROJECT_CONFTEST, MeshProject

#: Variables by which the executor detection would recognise a CI system; tests set their own.
CI_MARKERS = ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL")


@pytest.fixture
def mesh_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> MeshProject:
    token = "tok-" + secrets.token_hex(16)
    aws_secret = "aws-" + secrets.token_hex(16)
    for name in list(os.environ):
        if (name.startswith("MESHCHECK_") and name != "MESHCHECK_HOME") or name in CI_MARKERS:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESHCHECK_FAKE_BEARER", token)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    pytester.makeconftest(PROJECT_CONFTEST)
    return MeshProject(pytester=pytester, monkeypatch=monkeypatch, token=token, aws_secret=aws_secret)
