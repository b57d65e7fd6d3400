"""The provider contract: provision a cluster, hand back a ``ClusterHandle``, tear it down.

Kept deliberately small (after kubernetes-sigs/e2e-framework): everything above this layer works
only through the handle, so the lab, an existing cluster and EKS run the same harness code.
Optional abilities (exporting diagnostics, injecting lab faults) are separate Protocols so a
provider implements only what it can honestly do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from pytest_meshcheck.settings import Settings


@dataclass(frozen=True, kw_only=True)
class ClusterHandle:
    """How to reach a provisioned cluster from where pytest runs.

    It is plain data (JSON round-trips it) because pytest-xdist hands it from the controller,
    which provisioned the cluster, to the workers, which only use it. Secrets stay in the
    kubeconfig file on disk; the handle carries its path, never its contents.
    """

    provider: str
    name: str
    kubeconfig: Path
    context: str = ""
    #: Overrides how the ingress gateway is reached (``--meshcheck-gateway-url`` or provider-known).
    gateway_url: str = ""
    #: Facts for reports and later layers (region, Kubernetes version, lab faults ...): strings only.
    details: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "provider": self.provider,
                "name": self.name,
                "kubeconfig": str(self.kubeconfig),
                "context": self.context,
                "gateway_url": self.gateway_url,
                "details": dict(self.details),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ClusterHandle:
        data = json.loads(text)
        return cls(
            provider=data["provider"],
            name=data["name"],
            kubeconfig=Path(data["kubeconfig"]),
            context=data.get("context", ""),
            gateway_url=data.get("gateway_url", ""),
            details=dict(data.get("details", {})),
        )


@runtime_checkable
class Provider(Protocol):
    """Provisions one cluster for one run.

    ``teardown`` is always called at the end of the run, and must be idempotent and safe after a
    partial ``provision`` (it is called from failure paths and signal handlers). It honours
    ``settings.keep_cluster`` itself: keep everything and say how to remove it later.
    Optional: a ``destroys_cluster`` attribute (True when teardown deletes the whole cluster, so the
    run skips uninstalling what it installed), and ``set_service_cleanup(fn)`` to be given the
    harness's Kubernetes-side cleanup (LoadBalancer Services, whose cloud load balancers would
    otherwise outlive the cluster) to run first in teardown."""

    name: str

    def provision(self) -> ClusterHandle: ...

    def teardown(self) -> None: ...


@runtime_checkable
class ExportsDiagnostics(Protocol):
    """A provider that can save provider-side logs (control-plane logs, cloud events) to a dir."""

    def export_diagnostics(self, directory: Path) -> list[Path]: ...


class ProviderFactory(Protocol):
    def __call__(self, settings: Settings) -> Provider: ...
