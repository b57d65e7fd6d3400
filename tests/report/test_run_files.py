"""A gate run writes the run-level Allure files, labels checks and ends in the right verdict."""

from __future__ import annotations

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


def test_healthy_run_writes_run_files_and_passes(mesh_project: MeshProject) -> None:
    mesh_project.pytester.makepyfile(test_checks=HEALTHY_CHECKS)
    result = mesh_project.run()
    result.assert_outcomes(passed=2)
    results = mesh_project.allure_results
    for name in ("environment.properties", "executor.json", "categories.json"):
        assert (results / name).is_file(), name
    summary = mesh_project.summary()
    assert summary["verdict"] == "pass"
    assert summary["suites"]["mtls"]["counts"]["passed"] == 2
    result.stdout.fnmatch_lines(["*meshcheck*", "mtls*2*0*0*0*pass*probes 4*", "verdict: PASS*"])
