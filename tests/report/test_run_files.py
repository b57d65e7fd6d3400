"""A gate run writes the run-level Allure files, labels checks and ends in the right verdict."""

from __future__ import annotations

import json
import re

from .meshproject import MeshProject

HEALTHY_CHECKS = '''
import pytest

from pytest_meshcheck.report import attach_evidence, record_figure, record_version

pytestmark = pytest.mark.meshcheck_mtls


def test_plaintext_refused(meshcheck_cluster):
    attach_evidence("probe results", {"plaintext": "refused", "mtls": "ok"}, kind="json")
    record_figure("probes", 4)
    record_version("istio", "1.27.1")
    assert meshcheck_cluster.provider == "fake"


def test_identities_are_spiffe(meshcheck_cluster):
    record_figure("handshake p95", 3.5, "ms")
'''


GRAPH_CHECK = '''
import pytest

from pytest_meshcheck.report import attach_evidence
from pytest_meshcheck.report.plots import GraphEdge, ServiceGraph, service_graph_png


@pytest.mark.meshcheck_graph
def test_expected_edges_seen(meshcheck_cluster):
    graph = ServiceGraph(
        title="observed", nodes=["productpage", "reviews"],
        edges=[GraphEdge(source="productpage", target="reviews", mtls=True)],
    )
    attach_evidence("kiali graph", {"edges": [["productpage", "reviews"]]}, kind="json")
    attach_evidence("service graph", service_graph_png(graph), kind="png")
'''


def test_healthy_run_writes_run_files_and_passes(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS, test_graph=GRAPH_CHECK)
    result = mesh_project.run()
    result.assert_outcomes(passed=3)
    results = mesh_project.allure_results
    for name in ("environment.properties", "executor.json", "categories.json"):
        assert (results / name).is_file(), name
    summary = mesh_project.summary()
    assert summary["verdict"] == "pass"
    assert summary["suites"]["mtls"]["counts"]["passed"] == 2
    result.stdout.fnmatch_lines(["*meshcheck*", "mtls*2*0*0*0*pass*probes 4*", "verdict: PASS*"])
    graph_test = next(t for t in mesh_project.allure_tests() if t["name"] == "test_expected_edges_seen")
    attachments = {a["name"]: a for a in graph_test["attachments"]}
    assert attachments["service graph"]["type"] == "image/png"
    assert attachments["kiali graph"]["type"] == "application/json"
    png = (results / attachments["service graph"]["source"]).read_bytes()
    assert png.startswith(b"\x89PNG")
    labels = {label["name"]: label["value"] for label in graph_test["labels"]}
    assert labels["epic"] == "meshcheck"
    assert labels["feature"] == "graph"
    assert labels["story"] == "expected edges seen"
    assert labels["severity"] == "normal"
    properties = (results / "environment.properties").read_text(encoding="latin-1")
    assert "cluster.kubernetes_version=1.31.2" in properties
    assert "istio.version=1.27.1" in properties
    assert "bookinfo.namespace=bookinfo" in properties


def test_failing_check_gives_fail_with_the_failing_checks_listed(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(
        test_checks='''
import pytest

from pytest_meshcheck.errors import CheckFailed


@pytest.mark.meshcheck_gateway
def test_unknown_path_is_404(meshcheck_cluster):
    raise CheckFailed("GET /nope answered 200, expected 404")


@pytest.mark.meshcheck_gateway
def test_productpage_routed(meshcheck_cluster):
    pass


@pytest.mark.meshcheck_graph
def test_edges_present():
    assert {"a->b"} == {"a->b", "b->c"}
'''
    )
    result = mesh_project.run()
    result.assert_outcomes(passed=1, failed=2)
    summary = mesh_project.summary()
    assert summary["verdict"] == "fail"
    failing = {check["nodeid"]: check for check in summary["failing_checks"]}
    assert set(failing) == {
        "test_checks.py::test_unknown_path_is_404",
        "test_checks.py::test_edges_present",
    }
    assert failing["test_checks.py::test_unknown_path_is_404"]["category"] == "mesh regression"
    assert "answered 200" in failing["test_checks.py::test_unknown_path_is_404"]["message"]
    assert failing["test_checks.py::test_edges_present"]["category"] == "check assertion failed"
    assert summary["suites"]["gateway"]["verdict"] == "fail"
    statuses = {test["name"]: test["status"] for test in mesh_project.allure_tests()}
    assert statuses == {
        "test_unknown_path_is_404": "failed",
        "test_productpage_routed": "passed",
        "test_edges_present": "failed",
    }
    result.stdout.fnmatch_lines(["verdict: FAIL*", "  failed: test_checks.py::test_unknown_path_is_404*"])


def test_unreachable_cluster_gives_error_and_broken_in_allure(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS)
    result = mesh_project.run(unreachable=True)
    result.assert_outcomes(errors=2)
    summary = mesh_project.summary()
    assert summary["verdict"] == "error"
    broken = {check["nodeid"]: check for check in summary["broken_checks"]}
    assert set(broken) == {
        "test_checks.py::test_plaintext_refused",
        "test_checks.py::test_identities_are_spiffe",
    }
    assert {check["category"] for check in broken.values()} == {"environment problem"}
    assert "ClusterUnreachable" in broken["test_checks.py::test_plaintext_refused"]["message"]
    statuses = {test["name"]: test for test in mesh_project.allure_tests()}
    assert statuses["test_plaintext_refused"]["status"] == "broken"
    assert "ClusterUnreachable" in statuses["test_plaintext_refused"]["statusDetails"]["message"]
    categories = json.loads((mesh_project.allure_results / "categories.json").read_text())
    environment = next(c for c in categories if c["name"] == "environment problem")
    assert environment["matchedStatuses"] == ["broken"]
    for test in statuses.values():
        assert test["status"] == "broken"
        assert re.fullmatch(environment["messageRegex"], test["statusDetails"]["message"])


def test_all_skipped_is_an_error_not_a_pass(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(
        test_checks='''
import pytest

@pytest.mark.meshcheck_versions
def test_proxy_versions():
    pytest.skip("not implemented")
'''
    )
    result = mesh_project.run()
    result.assert_outcomes(skipped=1)
    summary = mesh_project.summary()
    assert summary["verdict"] == "error"
    assert "nothing was verified" in summary["reason"]
    # The suite itself did nothing wrong: it is "skipped", the run is "error" (nothing verified).
    assert summary["suites"]["versions"]["verdict"] == "skipped"
    result.stdout.fnmatch_lines(["versions*0*0*0*1*skipped*", "verdict: ERROR*"])


def test_a_suite_whose_checks_all_skipped_is_skipped_beside_passing_suites(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(
        test_checks=HEALTHY_CHECKS,
        test_pending='''
import pytest

pytestmark = pytest.mark.meshcheck_upgrade


def test_upgrade_keeps_traffic():
    pytest.skip("no --meshcheck-upgrade-to given")


def test_old_control_plane_removed():
    pytest.skip("no --meshcheck-upgrade-to given")
''',
    )
    result = mesh_project.run()
    result.assert_outcomes(passed=2, skipped=2)
    summary = mesh_project.summary()
    assert summary["verdict"] == "pass"
    upgrade = summary["suites"]["upgrade"]
    assert upgrade["verdict"] == "skipped"
    assert upgrade["reason"] == "all 2 check(s) skipped: nothing verified, nothing wrong"
    assert summary["suites"]["mtls"]["verdict"] == "pass"
    result.stdout.fnmatch_lines(["mtls*2*0*0*0*pass*", "upgrade*0*0*0*2*skipped*", "verdict: PASS*"])


def test_a_partly_skipped_suite_keeps_its_verdict(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(
        test_checks='''
import pytest

pytestmark = pytest.mark.meshcheck_gateway


def test_routed(meshcheck_cluster):
    pass


def test_not_applicable():
    pytest.skip("n/a")
'''
    )
    mesh_project.run().assert_outcomes(passed=1, skipped=1)
    assert mesh_project.summary()["suites"]["gateway"]["verdict"] == "pass"


BENCHMARK_CHECK = '''
import pytest

from pytest_meshcheck.errors import ConfigError
from pytest_meshcheck.report import describe_check, record_benchmark_result, reports_dir

pytestmark = pytest.mark.meshcheck_benchmark


def test_benchmark(meshcheck_cluster):
    assert reports_dir() is not None and reports_dir().name == "reports"
    record_benchmark_result({
        "metrics": {"gateway_p50_ms": {"value": 41.5, "unit": "ms", "better": "lower"}},
        "saved_as": "base",
        "comparison": None,
    })
    describe_check("<table><tr><td>gateway p50 latency</td><td>41.5 ms</td></tr></table>")


def test_baseline_named(meshcheck_cluster):
    raise ConfigError("--meshcheck-benchmark-compare=nope: no saved benchmark named 'nope'")
'''


def test_the_benchmark_section_reaches_the_summary_and_a_config_error_is_broken(
    mesh_project: MeshProject,
) -> None:
    mesh_project.pytester.makepyfile(test_bench=BENCHMARK_CHECK)
    mesh_project.run("-n", "2").assert_outcomes(passed=1, failed=1)
    summary = mesh_project.summary()
    assert summary["benchmark"] == {
        "metrics": {"gateway_p50_ms": {"value": 41.5, "unit": "ms", "better": "lower"}},
        "saved_as": "base",
        "comparison": None,
    }
    broken = {check["check"]: check for check in summary["broken_checks"]}
    assert broken["baseline named"]["category"] == "configuration error"
    assert "no saved benchmark named 'nope'" in broken["baseline named"]["message"]
    assert summary["verdict"] == "error"
    categories = json.loads((mesh_project.allure_results / "categories.json").read_text())
    configuration = next(c for c in categories if c["name"] == "configuration error")
    assert configuration["matchedStatuses"] == ["broken"]
    statuses = {test["name"]: test for test in mesh_project.allure_tests()}
    message = statuses["test_baseline_named"]["statusDetails"]["message"]
    assert re.fullmatch(configuration["messageRegex"], message)
    # The check's numbers are its Allure description, the first thing on its page.
    assert statuses["test_benchmark"]["descriptionHtml"] == (
        "<table><tr><td>gateway p50 latency</td><td>41.5 ms</td></tr></table>"
    )


def test_executor_comes_from_the_ci_environment(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS)
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "acme/mesh",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_NUMBER": "17",
        "GITHUB_WORKFLOW": "gate",
    }.items():
        mesh_project.monkeypatch.setenv(name, value)
    mesh_project.run().assert_outcomes(passed=2)
    executor = json.loads((mesh_project.allure_results / "executor.json").read_text())
    assert executor["type"] == "github"
    assert executor["buildUrl"] == "https://github.example/acme/mesh/actions/runs/4242"
    assert executor["buildOrder"] == 17
    assert mesh_project.summary()["ci"]["buildName"] == "gate #17"


def test_user_alluredir_is_respected(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS)
    mine = mesh_project.pytester.path / "my-results"
    mesh_project.run(f"--alluredir={mine}").assert_outcomes(passed=2)
    assert (mine / "categories.json").is_file()
    assert len(list(mine.glob("*-result.json"))) == 2
    assert not mesh_project.allure_results.exists()


def test_under_xdist_the_controller_writes_one_summary_with_workers_evidence(
    mesh_project: MeshProject,
) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS)
    mesh_project.run("-n", "2").assert_outcomes(passed=2)
    summary = mesh_project.summary()
    assert summary["verdict"] == "pass"
    checks = {check["nodeid"]: check for check in summary["suites"]["mtls"]["checks"]}
    evidence = checks["test_checks.py::test_plaintext_refused"]["evidence"]
    assert [(item["name"], item["kind"]) for item in evidence] == [("probe results", "json")]
    attached = json.loads((mesh_project.reports / evidence[0]["path"]).read_text())
    assert attached == {"mtls": "ok", "plaintext": "refused"}
    assert summary["versions"] == {"kubernetes": "1.31.2", "istio": "1.27.1"}
    assert summary["cluster"]["provider"] == "fake"
    assert len(mesh_project.allure_tests()) == 2
