"""What to build: one immutable description of an EKS run, from Settings or from CLI arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_meshcheck.errors import ConfigError
from pytest_meshcheck.providers.eks.addons import KNOWN_ADDONS
from pytest_meshcheck.providers.eks.naming import valid_cluster_name
from pytest_meshcheck.settings import Settings

CAPACITY_TYPES = ("ON_DEMAND", "SPOT")


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Per-step limits. EKS takes 10-15 minutes for a control plane whatever the harness's
    readiness timeout says, so the cloud-side waits never go below realistic floors."""

    cluster: float
    nodegroup: float
    addon: float
    network: float

    @classmethod
    def from_timeout(cls, timeout: float) -> Timeouts:
        return cls(
            cluster=max(timeout, 1800.0),
            nodegroup=max(timeout, 1200.0),
            addon=max(timeout, 600.0),
            network=max(timeout, 600.0),
        )


@dataclass(frozen=True, kw_only=True)
class EksPlan:
    name: str
    region: str
    version: str = "1.32"
    instance_types: tuple[str, ...] = ("m5.large",)
    nodes: int = 2
    capacity_type: str = "ON_DEMAND"
    vpc: str = ""
    subnets: tuple[str, ...] = ()
    public_only: bool = False
    ttl: float = 4 * 3600.0
    addons: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    kubeconfig: Path = Path("kubeconfig-eks")
    profile: str = ""
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if not valid_cluster_name(self.name):
            raise ConfigError(
                f"EKS cluster name {self.name!r} is not valid: letters, digits, '-' and '_', "
                "starting with a letter or digit, at most 100 characters",
                option="--name",
                value=self.name,
            )
        unknown = [a for a in self.addons if a not in KNOWN_ADDONS]
        if unknown:
            raise ConfigError(
                f"unknown EKS add-on(s) {unknown}; accepted: {', '.join(KNOWN_ADDONS)}", option="--addons"
            )
        if self.capacity_type not in CAPACITY_TYPES:
            raise ConfigError(
                f"capacity type {self.capacity_type!r}; accepted: {', '.join(CAPACITY_TYPES)}",
                option="--capacity-type",
            )
        if self.subnets and not self.vpc:
            raise ConfigError(
                "subnets were given without their VPC; add --meshcheck-eks-vpc", option="--subnets"
            )

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts.from_timeout(self.timeout)

    @classmethod
    def from_settings(cls, settings: Settings, *, name: str) -> EksPlan:
        return cls(
            name=name,
            region=settings.eks_region,
            version=settings.eks_version,
            instance_types=settings.eks_instance_types or ("m5.large",),
            nodes=settings.eks_nodes,
            vpc=settings.eks_vpc,
            subnets=settings.eks_subnets,
            public_only=settings.eks_public_only,
            ttl=settings.eks_ttl,
            capacity_type=settings.eks_capacity_type,
            addons=settings.eks_addons,
            admins=settings.eks_admins,
            profile=settings.eks_profile,
            kubeconfig=settings.reports_dir / "eks" / f"{name}.kubeconfig",
            timeout=settings.timeout,
        )
