"""``--meshcheck-cluster=eks``: an EKS cluster for the run, or an existing one reused as is.

The provider produces only the AWS side (cluster, nodes, kubeconfig); everything above talks to the
cluster through the kubeconfig, exactly as for the lab and kubeconfig providers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.providers.eks import cluster as eks_cluster
from pytest_meshcheck.providers.eks import kubeconfig, state
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.naming import new_run_id
from pytest_meshcheck.providers.eks.plan import EksPlan
from pytest_meshcheck.providers.eks.provisioner import Provisioner
from pytest_meshcheck.providers.eks.signals import teardown_on_interrupt
from pytest_meshcheck.providers.eks.teardown import Budget, TeardownLog, destroy_run
from pytest_meshcheck.providers.eks.timing import Timing
from pytest_meshcheck.settings import Settings


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def down_command(name: str, region: str) -> str:
    return f"meshcheck eks down --name {name} --region {region}"


class EksProvider:
    name = "eks"

    def __init__(
        self,
        settings: Settings,
        *,
        delete_services: Callable[[ClusterHandle], None] | None = None,
        after_step: Callable[[str], None] = lambda step: None,
        timing: Timing | None = None,
        aws: Aws | None = None,
        write: Callable[[str], None] = _stderr,
        run_id: str = "",
        state_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.aws = aws or Aws(region=settings.eks_region, profile=settings.eks_profile)
        self.timing = timing or Timing(timeout=settings.timeout)
        self.reused = bool(settings.eks_cluster)
        self.run_id = run_id or new_run_id()
        self.cluster_name = settings.eks_cluster or f"meshcheck-{self.run_id}"
        self._delete_services = delete_services
        self._after_step = after_step
        self._write = write
        self._state_dir = state_dir
        self._handle: ClusterHandle | None = None
        self._started = False
        self._done = False
        self._told_how_to_delete = False
        self.teardown_log = TeardownLog()

    @property
    def destroys_cluster(self) -> bool:
        """True when teardown deletes the cluster, so uninstalling from it first is wasted time.
        A reused cluster is the user's: the harness must uninstall what it installed there."""
        return not self.reused

    def set_service_cleanup(self, delete_services: Callable[[ClusterHandle], None]) -> None:
        """The harness's Kubernetes-side cleanup (delete LoadBalancer Services), run first at teardown."""
        self._delete_services = delete_services

    # --------------------------------------------------------------------------------------------

    def provision(self) -> ClusterHandle:
        if self._handle is not None:
            return self._handle
        if self.reused:
            self.aws.ensure_region()
            self._handle = self._reuse()
            return self._handle
        self.aws.ensure_region()
        plan = EksPlan.from_settings(self.settings, name=self.cluster_name)
        self._started = True
        record = state.RunRecord(
            name=plan.name, region=self.aws.region, run_id=self.run_id, kubeconfig=str(plan.kubeconfig)
        )
        state.save(record, self._state_dir)
        provisioner = Provisioner(
            self.aws, plan, run_id=self.run_id, timing=self.timing, after_step=self._after_step
        )
        with teardown_on_interrupt(self._teardown_after_failure, self._write):
            made = provisioner.run()
        state.save(
            state.RunRecord(
                name=plan.name,
                region=self.aws.region,
                run_id=self.run_id,
                kubeconfig=str(made.kubeconfig),
                expires_at=made.cluster.tags.get(T.EXPIRES_AT, ""),
                steps_done=provisioner.progress.steps_done,
            ),
            self._state_dir,
        )
        self._handle = self._make_handle(made.cluster, made.kubeconfig)
        return self._handle

    def _reuse(self) -> ClusterHandle:
        info = eks_cluster.describe(self.aws.client("eks"), self.cluster_name)
        if info is None:
            raise ProviderError(
                f"--meshcheck-eks-cluster={self.cluster_name}: no such EKS cluster in {self.aws.region}"
            )
        if info.status != "ACTIVE":
            raise ProviderError(f"EKS cluster {self.cluster_name} is {info.status}, not ACTIVE")
        path = self.settings.reports_dir / "eks" / f"{self.cluster_name}.kubeconfig"
        kubeconfig.write(
            path,
            kubeconfig.render(
                cluster=info.name,
                region=self.aws.region,
                endpoint=info.endpoint,
                ca_data=info.certificate_authority,
                profile=self.aws.profile,
            ),
        )
        return self._make_handle(info, path)

    def _make_handle(self, info: eks_cluster.ClusterInfo, path: Path) -> ClusterHandle:
        return ClusterHandle(
            provider="eks",
            name=info.name,
            kubeconfig=path,
            context=f"meshcheck-eks-{info.name}",
            details={
                "region": self.aws.region,
                "cluster": info.name,
                "kubernetes_version": info.version,
                "endpoint": info.endpoint,
                "run_id": "" if self.reused else self.run_id,
                "reused": "true" if self.reused else "false",
                "delete_command": "" if self.reused else down_command(info.name, self.aws.region),
            },
        )

    # --------------------------------------------------------------------------------------------

    def _teardown_after_failure(self) -> None:
        try:
            self.teardown()
        except ProviderError as exc:
            self._write(f"meshcheck: teardown after a failed provisioning did not finish: {exc.message}")

    def teardown(self) -> None:
        if self.reused or not self._started or self._done:
            return
        if self.settings.keep_cluster:
            if not self._told_how_to_delete:
                self._told_how_to_delete = True
                self._write(
                    f"meshcheck: keeping EKS cluster {self.cluster_name} in {self.aws.region} "
                    f"(--meshcheck-keep-cluster); it costs money until deleted. Delete it and "
                    f"everything created with it by running:\n    "
                    f"{down_command(self.cluster_name, self.aws.region)}"
                )
            return
        handle = self._handle
        cleanup = self._delete_services
        services = (lambda: cleanup(handle)) if cleanup is not None and handle is not None else None
        destroy_run(
            self.aws,
            cluster=self.cluster_name,
            run_id=self.run_id,
            timing=self.timing,
            budget=Budget.from_timeout(self.settings.timeout),
            delete_services=services,
            log=self.teardown_log,
        )
        state.forget(self.cluster_name, self.aws.region, self._state_dir)
        self._done = True

    def export_diagnostics(self, directory: Path) -> list[Path]:
        """The cluster's and node groups' AWS descriptions (status, health issues, versions)."""
        if self._handle is None:
            return []
        from pytest_meshcheck.providers.eks.aws import aws_errors

        eks = self.aws.client("eks")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        with aws_errors(f"describing EKS cluster {self.cluster_name} for diagnostics"):
            data: dict[str, object] = {"cluster": eks.describe_cluster(name=self.cluster_name)["cluster"]}
            groups = eks.list_nodegroups(clusterName=self.cluster_name)["nodegroups"]
            data["nodegroups"] = [
                eks.describe_nodegroup(clusterName=self.cluster_name, nodegroupName=g)["nodegroup"]
                for g in groups
            ]
        path = directory / f"eks-{self.cluster_name}.json"
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        written.append(path)
        if self.teardown_log.steps:
            log_path = directory / f"eks-{self.cluster_name}-teardown.txt"
            log_path.write_text(str(self.teardown_log), encoding="utf-8")
            written.append(log_path)
        return written
