"""The upgrade's decisions that need no cluster: plan, precheck rules, bundle split, phase blame."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_meshcheck.install.bookinfo import injection_labels
from pytest_meshcheck.install.istio import MeshInstall, istio_manifest_text
from pytest_meshcheck.install.plan import mesh_from
from pytest_meshcheck.install.revisions import settings_for, split_bundle
from pytest_meshcheck.kube.apply import load_documents
from pytest_meshcheck.settings import default_settings
from pytest_meshcheck.upgrade.gate import mesh_record
from pytest_meshcheck.upgrade.phases import BETWEEN, PhaseLog, failures_by_second, traffic_by_phase
from pytest_meshcheck.upgrade.plan import plan_upgrade, revision_for
from pytest_meshcheck.upgrade.precheck import method_problems, version_problems
from pytest_meshcheck.upgrade.workloads import selects_revision

INSTALLED = MeshInstall(version="1.26.3", revision="", method="manifest")


def plan(**raw: str):  # type: ignore[no-untyped-def]
    return plan_upgrade(default_settings(upgrade_to="1.27.1", **raw), INSTALLED)


def test_canary_installs_a_versioned_revision_and_moves_namespaces_to_it() -> None:
    canary = plan()
    assert revision_for("1.27.1") == "1-27-1"
    assert (canary.to_revision, canary.to_istiod, canary.from_istiod) == ("1-27-1", "istiod-1-27-1", "istiod")
    assert canary.namespace_label == {"istio.io/rev": "1-27-1"}
    assert plan(revision_tag="prod").namespace_label == {"istio.io/rev": "prod"}


def test_in_place_keeps_the_revision_and_ignores_a_tag() -> None:
    in_place = plan(upgrade_strategy="in-place", revision_tag="prod")
    assert (in_place.to_revision, in_place.tag) == ("", "")
    assert in_place.namespace_label == {"istio-injection": "enabled"}


@pytest.mark.parametrize(
    "raw",
    [{}, {"revision_tag": "prod"}, {"upgrade_strategy": "in-place"}],
    ids=["canary", "canary-with-tag", "in-place"],
)
def test_after_the_upgrade_new_namespaces_are_labelled_as_the_moved_ones(raw: dict[str, str]) -> None:
    """The suites after the gate read the mesh from its record: a namespace they create for
    injection must carry the label the gate moved the app namespaces to, or (the old default
    revision being gone after a canary) nothing would inject it."""
    upgrade = plan(**raw)
    record = {"method": "manifest", **mesh_record(upgrade, old_still_installed=False)}
    mesh = mesh_from(record)
    assert (mesh.version, mesh.revision) == ("1.27.1", upgrade.to_revision)
    assert injection_labels(mesh.injection_revision) == upgrade.namespace_label


@pytest.mark.parametrize(
    ("strategy", "to", "fragment"),
    [
        ("canary", "1.26.3", "not newer"),
        ("canary", "1.25.0", "not newer"),
        ("in-place", "1.28.0", "at most 1 minor"),
        ("canary", "1.29.0", "at most 2 minor"),
        ("canary", "2.0.0", "across major"),
    ],
)
def test_precheck_refuses_unsupported_version_jumps(strategy: str, to: str, fragment: str) -> None:
    problems = version_problems(
        plan_upgrade(default_settings(upgrade_to=to, upgrade_strategy=strategy), INSTALLED)
    )
    assert len(problems) == 1 and fragment in problems[0], problems


@pytest.mark.parametrize(
    ("strategy", "to"), [("canary", "1.28.1"), ("in-place", "1.27.0"), ("canary", "1.26.4")]
)
def test_precheck_accepts_supported_jumps(strategy: str, to: str) -> None:
    assert (
        version_problems(plan_upgrade(default_settings(upgrade_to=to, upgrade_strategy=strategy), INSTALLED))
        == []
    )


def test_precheck_refuses_methods_that_cannot_reach_the_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "istio.yaml"
    bundle.write_text("")
    assert "did not install" in method_problems(default_settings(install="skip"))[0]
    assert "--meshcheck-istio-manifest" in method_problems(default_settings(istio_manifest=str(bundle)))[0]
    assert method_problems(default_settings(cluster="lab")) == []


def test_the_shipped_bundle_splits_into_shared_control_plane_and_gateway() -> None:
    settings = settings_for(default_settings(), version="1.27.1", revision="1-27-1")
    parts = split_bundle(load_documents(istio_manifest_text(settings)))
    kinds = lambda docs: {(d["kind"], d["metadata"]["name"]) for d in docs}  # noqa: E731
    assert ("Deployment", "istiod-1-27-1") in kinds(parts.control_plane)
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector-1-27-1") in kinds(parts.control_plane)
    assert ("Deployment", "istio-ingressgateway") in kinds(parts.gateway)
    assert ("Namespace", "istio-system") in kinds(parts.shared)
    assert all(d["kind"] == "CustomResourceDefinition" or d["kind"] == "Namespace" for d in parts.shared)
    assert not any(d["metadata"]["name"].startswith("istio-ingressgateway") for d in parts.control_plane)


@pytest.mark.parametrize(
    ("labels", "revision", "tags", "selected"),
    [
        ({"istio-injection": "enabled"}, "", (), True),
        ({"istio-injection": "enabled"}, "1-27-1", (), False),
        ({"istio-injection": "enabled", "istio.io/rev": "1-27-1"}, "1-27-1", (), False),
        ({"istio.io/rev": "1-27-1"}, "1-27-1", (), True),
        ({"istio.io/rev": "prod"}, "1-27-1", ("prod",), True),
        ({"istio.io/rev": "prod"}, "1-27-1", (), False),
        ({"istio-injection": "disabled"}, "", (), False),
        ({}, "", (), False),
    ],
)
def test_which_namespaces_a_revision_injects(
    labels: dict[str, str], revision: str, tags: tuple[str, ...], selected: bool
) -> None:
    assert selects_revision(labels, revision, frozenset(tags)) is selected


@dataclass
class Second:
    at: int
    requests: int
    failures: int


@dataclass
class Failure:
    at: float
    name: str = "/productpage"
    method: str = "GET"
    error: str = "reset"


def test_failures_are_blamed_on_the_step_that_was_running() -> None:
    now = [1000.0]
    log = PhaseLog(clock=lambda: now[0])
    with log.phase("control plane"):
        now[0] = 1010.0
    now[0] = 1012.0
    with log.phase("restart bookinfo"):
        now[0] = 1020.0
    timeline = [Second(at, 10, 0) for at in range(1000, 1025)]
    failures = [Failure(1015.2), Failure(1015.7, error="503"), Failure(1011.0), Failure(1003.0)]
    by_phase = {p.phase: p for p in traffic_by_phase(log, timeline, failures)}
    assert by_phase["control plane"].requests == 100 and by_phase["control plane"].failures == 1
    assert by_phase["restart bookinfo"].failures == 2
    assert by_phase["restart bookinfo"].errors == {"reset": 1, "503": 1}
    assert by_phase[BETWEEN].failures == 1  # 1011: between the two steps
    assert sum(p.requests for p in by_phase.values()) == 250
    assert failures_by_second(failures, log) == [
        {"at": 1003, "failures": 1, "phase": "control plane"},
        {"at": 1011, "failures": 1, "phase": BETWEEN},
        {"at": 1015, "failures": 2, "phase": "restart bookinfo"},
    ]


def test_a_failed_step_is_recorded_with_its_error() -> None:
    log = PhaseLog()
    with pytest.raises(RuntimeError), log.phase("gateway"):
        raise RuntimeError("rollout stuck")
    [phase] = log.to_list()
    assert phase["outcome"] == "failed" and "rollout stuck" in phase["detail"]
    assert phase["ended_at"] is not None
