"""Provisioning as a fixed sequence of steps, each recorded, each a place a run can stop.

``after_step`` is called with each finished step's name. The provider uses it to persist progress;
tests raise from it to prove that a run interrupted after *any* step leaves nothing behind after
teardown or reap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.eks import addons, iam, kubeconfig, nodegroup, vpc
from pytest_meshcheck.providers.eks import cluster as eks_cluster
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws, aws_errors, partition_of
from pytest_meshcheck.providers.eks.naming import Names
from pytest_meshcheck.providers.eks.plan import EksPlan
from pytest_meshcheck.providers.eks.timing import Timing

STEPS: tuple[str, ...] = ("preflight", "iam", "network", "cluster", "nodegroup", "addons", "kubeconfig")
#: How often EKS may reject zones before we stop re-planning subnets.
ZONE_RETRIES = 2


@dataclass(frozen=True, kw_only=True)
class Provisioned:
    cluster: eks_cluster.ClusterInfo
    kubeconfig: Path
    network: vpc.Network


@dataclass
class Progress:
    run_id: str
    owner: str = ""
    tags: dict[str, str] | None = None
    roles: iam.Roles | None = None
    network: vpc.Network | None = None
    steps_done: tuple[str, ...] = ()


class Provisioner:
    def __init__(
        self,
        aws: Aws,
        plan: EksPlan,
        *,
        run_id: str,
        timing: Timing,
        after_step: Callable[[str], None] = lambda step: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.aws = aws
        self.plan = plan
        self.timing = timing
        self.after_step = after_step
        self.now = now
        self.names = Names(cluster=plan.name, run_id=run_id)
        self.progress = Progress(run_id=run_id)

    def run(self) -> Provisioned:
        self._step("preflight", self._preflight)
        self._step("iam", self._iam)
        self._step("network", self._network)
        self._step("cluster", self._cluster)
        self._step("nodegroup", self._nodegroup)
        self._step("addons", self._addons)
        info = eks_cluster.describe(self.aws.client("eks"), self.plan.name)
        if info is None:
            raise ProviderError(f"EKS cluster {self.plan.name} disappeared during provisioning")
        self._step("kubeconfig", lambda: self._kubeconfig(info))
        assert self.progress.network is not None
        return Provisioned(cluster=info, kubeconfig=self.plan.kubeconfig, network=self.progress.network)

    def _step(self, name: str, action: Callable[[], None]) -> None:
        action()
        self.progress.steps_done = (*self.progress.steps_done, name)
        self.after_step(name)

    @property
    def tags(self) -> dict[str, str]:
        assert self.progress.tags is not None, "preflight sets the tags"
        return self.progress.tags

    def _preflight(self) -> None:
        ec2 = self.aws.client("ec2")
        with aws_errors("checking AWS credentials (sts:GetCallerIdentity)"):
            identity = self.aws.client("sts").get_caller_identity()
        self.progress.owner = str(identity["Arn"])
        self.progress.tags = T.run_tags(
            run_id=self.names.run_id,
            owner=self.progress.owner,
            cluster=self.plan.name,
            created=self.now(),
            ttl_s=self.plan.ttl,
        )
        existing = eks_cluster.describe(self.aws.client("eks"), self.plan.name)
        if existing is not None:
            raise ProviderError(
                f"an EKS cluster named {self.plan.name!r} already exists in {self.aws.region}; choose "
                "another name, or use it as is with --meshcheck-eks-cluster (never deleted by the run)"
            )
        if not self.plan.vpc and not self.plan.public_only:
            with aws_errors("checking the Elastic IP quota"):
                limits = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
                used = len(ec2.describe_addresses()["Addresses"])
            values = [v["AttributeValue"] for a in limits["AccountAttributes"] for v in a["AttributeValues"]]
            if values and used >= int(values[0]):
                raise ProviderError(
                    f"all {values[0]} Elastic IPs of {self.aws.region} are in use and the NAT gateway needs "
                    "one; release one, raise the quota, or use --meshcheck-eks-public-only"
                )

    def _iam(self) -> None:
        self.progress.roles = iam.create_roles(
            self.aws.client("iam"),
            cluster_role=self.names.cluster_role,
            node_role=self.names.node_role,
            tags=self.tags,
            partition=partition_of(self.aws.region),
            timing=self.timing,
        )

    def _network(self) -> None:
        ec2 = self.aws.client("ec2")
        if self.plan.vpc:
            self.progress.network = vpc.describe_existing(ec2, self.plan.vpc, self.plan.subnets)
            return
        timing = replace(self.timing, timeout=self.plan.timeouts.network)
        self.progress.network = vpc.create_network(
            ec2,
            names=self.names,
            run_tags=self.tags,
            timing=timing,
            public_only=self.plan.public_only,
            zones=vpc.choose_zones(ec2),
        )

    def _cluster(self) -> None:
        eks = self.aws.client("eks")
        assert self.progress.roles is not None and self.progress.network is not None
        for attempt in range(ZONE_RETRIES + 1):
            try:
                eks_cluster.create(
                    eks,
                    name=self.plan.name,
                    version=self.plan.version,
                    role_arn=self.progress.roles.cluster_arn,
                    subnets=self.progress.network.cluster_subnets,
                    tags=self.tags,
                    token=self.names.token(f"cluster{attempt}"),
                    timing=self.timing,
                )
                break
            except eks_cluster.UnsupportedZones as exc:
                if attempt == ZONE_RETRIES or not exc.valid_zones:
                    raise
                self.progress.network = vpc.rezone(
                    self.aws.client("ec2"),
                    self.progress.network,
                    exc.valid_zones,
                    names=self.names,
                    run_tags=self.tags,
                    timing=self.timing,
                )
        eks_cluster.wait_active(eks, self.plan.name, self.timing, self.plan.timeouts.cluster)

    def _nodegroup(self) -> None:
        assert self.progress.roles is not None and self.progress.network is not None
        nodegroup.create(
            self.aws.client("eks"),
            cluster=self.plan.name,
            name=self.names.nodegroup,
            node_role_arn=self.progress.roles.node_arn,
            subnets=self.progress.network.node_subnets,
            instance_types=self.plan.instance_types,
            nodes=self.plan.nodes,
            capacity_type=self.plan.capacity_type,
            tags=self.tags,
            token=self.names.token("nodegroup"),
            timing=self.timing,
            timeout=self.plan.timeouts.nodegroup,
        )

    def _addons(self) -> None:
        eks = self.aws.client("eks")
        addons.create(
            eks,
            self.plan.name,
            self.plan.addons,
            tags=self.tags,
            timing=self.timing,
            timeout=self.plan.timeouts.addon,
        )
        addons.grant_admin(eks, self.plan.name, self.plan.admins, self.tags)

    def _kubeconfig(self, info: eks_cluster.ClusterInfo) -> None:
        kubeconfig.write(
            self.plan.kubeconfig,
            kubeconfig.render(
                cluster=info.name,
                region=self.aws.region,
                endpoint=info.endpoint,
                ca_data=info.certificate_authority,
                profile=self.plan.profile,
            ),
        )
