"""The pytester project the report tests run: a fake provider and the report layer wired in.

The fake provider writes a real kubeconfig holding a bearer token, so redaction is exercised on a
secret the run only learns from the cluster handle; ``MESHCHECK_FAKE_UNREACHABLE=1`` makes it
raise ``ClusterUnreachable`` the way a dead API server would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT_CONFTEST = '''
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_meshcheck.errors import ClusterUnreachable
from pytest_meshcheck.providers.base import ClusterHandle


class FakeProvider:
    name = "fake"

    def __init__(self, root: Path) -> None:
        self.root = root

    def provision(self) -> ClusterHandle:
        if os.environ.get("MESHCHECK_FAKE_UNREACHABLE") == "1":
            raise ClusterUnreachable("https://127.0.0.1:9/ refused the connection (fake provider)")
        kubeconfig = self.root / "fake-kubeconfig.yaml"
        kubeconfig.write_text(
            "apiVersion: v1\\nkind: Config\\ncurrent-context: fake\\n"
            "clusters:\\n- name: fake\\n  cluster: {server: 'https://127.0.0.1:9'}\\n"
            "contexts:\\n- name: fake\\n  context: {cluster: fake, user: admin}\\n"
            "users:\\n- name: admin\\n  user: {token: " + os.environ["MESHCHECK_FAKE_BEARER"] + "}\\n"
        )
        return ClusterHandle(
            provider="fake",
            name="fake-1",
            kubeconfig=kubeconfig,
            context="fake",
            details={"kubernetes_version": "1.31.2", "region": "loopback"},
        )

    def teardown(self) -> None:
        pass


def pytest_meshcheck_make_provider(config, settings):
    return FakeProvider(Path(str(config.rootpath)))
'''


@dataclass
class MeshProject:
    pytester: pytest.Pytester
    monkeypatch: pytest.MonkeyPatch
    token: str
    aws_secret: str

    @property
    def reports(self) -> Path:
        return self.pytester.path / "reports"

    @property
    def allure_results(self) -> Path:
        return self.reports / "allure-results"

    def run(self, *args: str, unreachable: bool = False) -> pytest.RunResult:
        self.monkeypatch.setenv("MESHCHECK_FAKE_UNREACHABLE", "1" if unreachable else "0")
        return self.pytester.runpytest_subprocess(
            "--meshcheck",
            "--meshcheck-suites=none",
            "-p",
            "no:cacheprovider",
            *args,
        )

    def summary(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.reports / "meshcheck-summary.json").read_text())
        return loaded

    def allure_tests(self) -> list[dict[str, Any]]:
        results = []
        for path in sorted(self.allure_results.glob("*-result.json")):
            results.append(json.loads(path.read_text()))
        return results
