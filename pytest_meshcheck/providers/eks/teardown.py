"""Delete one run's resources in reverse order of creation. Idempotent; NotFound is success.

Order matters because AWS refuses to delete a thing something else still uses: Kubernetes'
load balancers hold ENIs in the subnets, node groups block the cluster, the cluster's ENIs block
the subnets, the NAT gateway holds its Elastic IP, and a role in use by a node group must outlive
it. The first failing step stops the teardown (deleting further would orphan what failed) and the
error says to run ``meshcheck eks down`` again, which resumes from what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytest_meshcheck.errors import MeshcheckError, ProviderError
from pytest_meshcheck.providers.eks import addons, loadbalancers, nodegroup, vpc
from pytest_meshcheck.providers.eks import cluster as eks_cluster
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import Aws, aws_errors
from pytest_meshcheck.providers.eks.iam import delete_role, find_roles
from pytest_meshcheck.providers.eks.timing import Timing


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Per-step time limits; EKS itself takes minutes to delete a cluster or a node group."""

    load_balancers: float
    nodegroups: float
    cluster: float
    network: float

    @classmethod
    def from_timeout(cls, timeout: float) -> Budget:
        return cls(
            load_balancers=min(timeout, 300.0),
            nodegroups=max(timeout, 1200.0),
            cluster=max(timeout, 1200.0),
            network=max(timeout, 600.0),
        )


@dataclass
class TeardownLog:
    """What happened, step by step, for the terminal and the report."""

    steps: list[tuple[str, str]] = field(default_factory=list)

    def add(self, step: str, outcome: str) -> None:
        self.steps.append((step, outcome))

    def __str__(self) -> str:
        return "\n".join(f"{step}: {outcome}" for step, outcome in self.steps)


def destroy_run(
    aws: Aws,
    *,
    cluster: str,
    run_id: str,
    timing: Timing,
    budget: Budget,
    delete_services: Callable[[], None] | None = None,
    addon_names: Sequence[str] = (),
    admins: Sequence[str] = (),
    log: TeardownLog | None = None,
) -> TeardownLog:
    """Remove everything tagged ``run_id``. The cluster is touched only if it carries that run id:
    a cluster of the same name from another run (or a reused one) is never deleted."""
    log = log if log is not None else TeardownLog()
    eks = aws.client("eks")

    def step(name: str, action: Callable[[], str]) -> None:
        try:
            log.add(name, action())
        except MeshcheckError as exc:
            log.add(name, f"FAILED: {exc.message}")
            raise ProviderError(
                f"teardown of {cluster} (run {run_id}) stopped at {name}: {exc.message}. Nothing after "
                f"this step was deleted; fix the cause and run `meshcheck eks down --name {cluster} "
                f"--region {aws.region}` to finish.",
                evidence={"teardown": str(log)},
            ) from exc

    info = eks_cluster.describe(eks, cluster)
    ours = info is not None and info.tags.get(T.RUN_ID) == run_id

    if ours:

        def services() -> str:
            if delete_services is None:
                return "no Kubernetes cleanup given; load balancers are removed via AWS"
            try:
                delete_services()
            except Exception as exc:  # the cluster may no longer answer; AWS-side cleanup follows
                return f"Kubernetes cleanup failed ({exc}); load balancers are removed via AWS"
            return "LoadBalancer services deleted"

        step("kubernetes services", services)
        grace = budget.load_balancers if delete_services is not None else 0.0
        step("load balancers", lambda: loadbalancers.wait_gone(aws, cluster, timing, grace))
        step("node groups", lambda: _describe(nodegroup.delete_all(eks, cluster, timing, budget.nodegroups)))

        def extras() -> str:
            addons.delete(eks, cluster, addon_names, timing, budget.nodegroups)
            addons.revoke(eks, cluster, admins)
            return _describe([*addon_names, *admins])

        step("add-ons and access entries", extras)
        step(
            "cluster",
            lambda: "deleted" if eks_cluster.delete(eks, cluster, timing, budget.cluster) else "gone",
        )
    else:
        log.add("cluster", "already gone" if info is None else "belongs to another run; left untouched")
    if info is None or ours:
        # Load balancers that outlived their Services (or the cluster, after a crash mid-teardown)
        # still hold ENIs in the subnets. With the cluster gone nothing recreates them, and no
        # other run can be using the cluster name's tag.
        step(
            "leftover load balancers", lambda: _describe(loadbalancers.remove_leftovers(aws, cluster, timing))
        )

    step("network", lambda: _describe(vpc.delete_network(aws.client("ec2"), run_id, timing)))

    def roles() -> str:
        iam = aws.client("iam")
        names = [name for name, tags in find_roles(iam).items() if tags.get(T.RUN_ID) == run_id]
        for name in names:
            with aws_errors(f"deleting IAM role {name}"):
                delete_role(iam, name)
        return _describe(names)

    step("IAM roles", roles)
    return log


def _describe(items: Sequence[str]) -> str:
    return f"removed {len(items)}: {', '.join(items)}" if items else "nothing to remove"
