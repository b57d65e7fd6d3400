"""Provisioning once per run, hand-off to xdist workers, teardown once, failures surfaced.

A fake provider, plugged in through the public ``pytest_meshcheck_make_provider`` hook, records
every call in a journal file so the test can count them across processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAKE_PROVIDER_CONFTEST = """
import json, os
from pathlib import Path

import pytest

from pytest_meshcheck.errors import ClusterUnreachable
from pytest_meshcheck.providers.base import ClusterHandle

JOURNAL = Path(os.environ["FAKE_JOURNAL"])


def record(event, **data):
    with JOURNAL.open("a") as fh:
        fh.write(json.dumps({"event": event, "pid": os.getpid(), **data}) + "\\n")


class FakeProvider:
    name = "fake"

    def __init__(self, settings):
        self.settings = settings

    def provision(self):
        record("provision")
        if os.environ.get("FAKE_FAIL"):
            raise ClusterUnreachable(
                "the API server at https://127.0.0.1:1 refused the connection",
                evidence={"dial log": "dial tcp 127.0.0.1:1: connect: connection refused"},
            )
        return ClusterHandle(provider="fake", name="fake-1", kubeconfig=Path("/nonexistent/kubeconfig"),
                             details={"kubernetes_version": "v1.32.0"})

    def teardown(self):
        record("teardown", keep=self.settings.keep_cluster)


def pytest_meshcheck_make_provider(config, settings):
    return FakeProvider(settings)
"""

USER_TESTS = """
import json, os
from pathlib import Path

JOURNAL = Path(os.environ["FAKE_JOURNAL"])

def _use(handle):
    with JOURNAL.open("a") as fh:
        fh.write(json.dumps({"event": "use", "pid": os.getpid(), "name": handle.name}) + "\\n")

def test_a(meshcheck_cluster): _use(meshcheck_cluster)
def test_b(meshcheck_cluster): _use(meshcheck_cluster)
def test_c(meshcheck_cluster): _use(meshcheck_cluster)
def test_d(meshcheck_cluster): _use(meshcheck_cluster)
"""


@pytest.fixture
def journal(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "journal.jsonl"
    monkeypatch.setenv("FAKE_JOURNAL", str(path))
    pytester.makeconftest(FAKE_PROVIDER_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    return path


def read(journal: Path) -> list[dict[str, object]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines()]


def events(journal: Path, kind: str) -> list[dict[str, object]]:
    return [entry for entry in read(journal) if entry["event"] == kind]


def test_provisions_lazily_once_and_tears_down_once(pytester: pytest.Pytester, journal: Path) -> None:
    result = pytester.runpytest_subprocess("--meshcheck", "--meshcheck-suites=none", "-p", "no:xdist")
    result.assert_outcomes(passed=4)
    assert len(events(journal, "provision")) == 1
    assert len(events(journal, "teardown")) == 1
    assert {e["name"] for e in events(journal, "use")} == {"fake-1"}


def test_nothing_is_provisioned_when_no_test_needs_a_cluster(
    pytester: pytest.Pytester, journal: Path
) -> None:
    pytester.runpytest_subprocess("--meshcheck", "--meshcheck-suites=none", "-k", "nothing_matches")
    assert events(journal, "provision") == []
    assert events(journal, "teardown") == []


def test_xdist_controller_provisions_once_and_workers_share_the_handle(
    pytester: pytest.Pytester, journal: Path
) -> None:
    result = pytester.runpytest_subprocess("--meshcheck", "--meshcheck-suites=none", "-n", "2")
    result.assert_outcomes(passed=4)
    provisions = events(journal, "provision")
    teardowns = events(journal, "teardown")
    uses = events(journal, "use")
    assert len(provisions) == 1
    assert len(teardowns) == 1
    assert provisions[0]["pid"] == teardowns[0]["pid"], "the controller tears down what it provisioned"
    worker_pids = {e["pid"] for e in uses}
    assert len(worker_pids) == 2, "both workers ran tests"
    assert provisions[0]["pid"] not in worker_pids, "workers never provision"
    assert {e["name"] for e in uses} == {"fake-1"}


def test_keep_cluster_is_left_to_the_provider_and_announced(pytester: pytest.Pytester, journal: Path) -> None:
    result = pytester.runpytest_subprocess(
        "--meshcheck", "--meshcheck-suites=none", "--meshcheck-keep-cluster", "-p", "no:xdist"
    )
    result.assert_outcomes(passed=4)
    assert len(events(journal, "provision")) == 1
    # The provider is always told to tear down, and honours keep_cluster itself.
    assert [e["keep"] for e in events(journal, "teardown")] == [True]
    result.stdout.fnmatch_lines(["*meshcheck: keeping the fake cluster 'fake-1'*"])


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]], ids=["serial", "xdist"])
def test_provisioning_failure_errors_every_test_with_the_reason(
    pytester: pytest.Pytester, journal: Path, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    result = pytester.runpytest_subprocess("--meshcheck", "--meshcheck-suites=none", *xdist)
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*refused the connection*"])
    assert len(events(journal, "provision")) == 1, "a failed provisioning is not retried per test"
    assert len(events(journal, "teardown")) == 1, "teardown runs after a partial provisioning"
    summary = json.loads((pytester.path / "reports" / "meshcheck-summary.json").read_text())
    assert summary["verdict"] == "error"
    checks = [c for suite in summary["suites"].values() for c in suite["checks"]]
    first = next(c for c in checks if c["evidence"])
    assert [e["name"] for e in first["evidence"]] == ["evidence: dial log"]


def test_fixtures_skip_without_the_flag(pytester: pytest.Pytester, journal: Path) -> None:
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*meshcheck_cluster needs the mesh gate: run pytest with --meshcheck*"])
    assert events(journal, "provision") == []
