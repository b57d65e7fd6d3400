"""The pytest path: ``--meshcheck-cluster=eks`` provisions through the registry and tears down."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.base import ClusterHandle, ExportsDiagnostics, Provider
from pytest_meshcheck.providers.eks import state
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.provider import EksProvider
from pytest_meshcheck.providers.eks.timing import Timing
from pytest_meshcheck.providers.registry import make_builtin_provider
from pytest_meshcheck.settings import Settings, default_settings

from .inventory import inventory, leftovers
from .support import REGION, FakeClock
from .test_up_down import parse, run


def settings(tmp_path: Path, **extra: str) -> Settings:
    return default_settings(
        cluster="eks", eks_region=REGION, reports_dir=str(tmp_path / "reports"), eks_nodes="1", **extra
    )


def test_registry_builds_an_eks_provider(aws_env: str, tmp_path: Path) -> None:
    provider = make_builtin_provider(settings(tmp_path))
    assert isinstance(provider, EksProvider)
    assert isinstance(provider, Provider)
    assert isinstance(provider, ExportsDiagnostics)


def test_provision_then_teardown_end_to_end(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    seen_by_cleanup: list[str] = []

    def delete_services(handle: ClusterHandle) -> None:
        # the harness's Kubernetes part runs first, while the cluster still exists
        seen_by_cleanup.append(aws.client("eks").describe_cluster(name=handle.name)["cluster"]["status"])

    provider = EksProvider(settings(tmp_path), aws=aws, timing=timing, delete_services=delete_services)
    handle = provider.provision()
    assert provider.provision() is handle
    assert handle.provider == "eks"
    assert handle.name.startswith("meshcheck-")
    assert dict(handle.details) | {"endpoint": "", "run_id": ""} == {
        "region": REGION,
        "cluster": handle.name,
        "kubernetes_version": "1.32",
        "endpoint": "",
        "run_id": "",
        "reused": "false",
        "delete_command": f"meshcheck eks down --name {handle.name} --region {REGION}",
    }
    assert handle.details["run_id"] == provider.run_id
    assert provider.destroys_cluster
    assert ClusterHandle.from_json(handle.to_json()) == handle
    assert handle.kubeconfig == tmp_path / "reports" / "eks" / f"{handle.name}.kubeconfig"
    config = yaml.safe_load(handle.kubeconfig.read_text())
    assert config["current-context"] == handle.context
    assert state.load(handle.name, REGION) is not None

    exported = provider.export_diagnostics(tmp_path / "diag")
    assert [p.name for p in exported] == [f"eks-{handle.name}.json"]

    provider.teardown()
    assert seen_by_cleanup == ["ACTIVE"]
    assert leftovers(aws) == {}
    assert state.load(handle.name, REGION) is None
    provider.teardown()  # idempotent
    assert [step for step, _ in provider.teardown_log.steps][-1] == "IAM roles"


def test_failed_provisioning_cleans_up_before_raising(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    def fail_at_nodegroup(step: str) -> None:
        if step == "nodegroup":
            raise ProviderError("node group never became healthy")

    provider = EksProvider(settings(tmp_path), aws=aws, timing=timing, after_step=fail_at_nodegroup)
    with pytest.raises(ProviderError, match="never became healthy"):
        provider.provision()
    assert leftovers(aws) == {}
    provider.teardown()  # safe after a partial, already cleaned-up provisioning
    assert leftovers(aws) == {}


def test_teardown_before_provision_does_nothing(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    EksProvider(settings(tmp_path), aws=aws, timing=timing).teardown()
    assert leftovers(aws) == {}


def test_keep_cluster_keeps_everything_and_says_how_to_delete(
    aws: Aws, timing: Timing, tmp_path: Path
) -> None:
    said: list[str] = []
    provider = EksProvider(settings(tmp_path, keep_cluster="true"), aws=aws, timing=timing, write=said.append)
    handle = provider.provision()
    provider.teardown()
    provider.teardown()
    assert inventory(aws)["clusters"] == [handle.name]
    assert len(said) == 1
    assert f"meshcheck eks down --name {handle.name} --region {REGION}" in said[0]
    # ... and that command really removes it
    from .support import FakeClock
    from .test_up_down import parse, run

    assert run(parse("down", "--name", handle.name, "--region", REGION), aws, FakeClock())[0] == 0
    assert leftovers(aws) == {}


def test_reused_cluster_is_used_and_never_deleted(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    first = EksProvider(settings(tmp_path, keep_cluster="true"), aws=aws, timing=timing, write=lambda _: None)
    existing = first.provision()
    before = inventory(aws)
    reuse = EksProvider(settings(tmp_path, eks_cluster=existing.name), aws=aws, timing=timing)
    handle = reuse.provision()
    assert handle.name == existing.name
    assert handle.details["reused"] == "true"
    assert not reuse.destroys_cluster
    assert yaml.safe_load(handle.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    reuse.teardown()
    assert inventory(aws) == before
    assert run(parse("down", "--name", existing.name, "--region", REGION), aws, FakeClock())[0] == 0
    assert leftovers(aws) == {}


def test_reusing_a_missing_cluster_is_a_clear_error(aws: Aws, timing: Timing, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="no such EKS cluster"):
        EksProvider(settings(tmp_path, eks_cluster="nope"), aws=aws, timing=timing).provision()
