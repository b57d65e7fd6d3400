"""The upgrade's steps, in order, each recorded as a phase of the window.

Canary (Istio's recommended way): the new version's istiod as a revision beside the old one, a
revision tag pointed at it if one is asked for, the gateway moved to it, the injected namespaces
relabelled, their workloads restarted namespace by namespace, then the old revision removed.
In place: istiod of the installed revision upgraded, the gateway, then the restarts.

``on_installed`` is told as soon as the cluster's Istio changed, so teardown removes what is
really there even when a later step fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.install.revisions import ControlPlane
from pytest_meshcheck.upgrade.phases import PhaseLog
from pytest_meshcheck.upgrade.plan import UpgradePlan
from pytest_meshcheck.upgrade.workloads import move_namespace, namespaces_on, restart_deployments

ProgressReporter = Callable[[str, float], None]


def mesh_record(plan: UpgradePlan, *, old_still_installed: bool) -> dict[str, Any]:
    """The mesh layer's record once the cluster runs ``plan``'s target: what teardown removes
    (``also_installed``: the old revision, while it is still there) and what the suites after the
    gate read (``install/plan.mesh_from``), including where new namespaces are moved to."""
    old = {"version": plan.from_version, "revision": plan.from_revision}
    return {
        "version": plan.to_version,
        "revision": plan.to_revision,
        "upgraded_from": old,
        "also_installed": [old] if old_still_installed else [],
        "revision_tag": plan.tag,
    }


@dataclass(frozen=True, kw_only=True)
class UpgradeSteps:
    plan: UpgradePlan
    control_plane: ControlPlane
    timeout: float
    #: Receives the mesh layer's new record: the version and revision now installed, and a
    #: revision that is still there beside it (canary, until the old one is removed).
    on_installed: Callable[[Mapping[str, Any]], object]
    progress: ProgressReporter | None = None

    def run(self, log: PhaseLog) -> list[str]:
        """Do the upgrade; returns the namespaces that were moved."""
        plan, cp = self.plan, self.control_plane
        kube = cp.kube
        namespaces = namespaces_on(kube, plan.from_revision)
        with log.phase("control plane"):
            self.on_installed(mesh_record(plan, old_still_installed=plan.canary))
            cp.install_control_plane(plan.to_version, plan.to_revision)
        if plan.tag:
            with log.phase(f"revision tag {plan.tag}"):
                cp.point_tag(plan.tag, plan.to_revision)
        with log.phase("gateway"):
            cp.upgrade_gateway(plan.to_version, plan.to_revision)
        if plan.canary:
            with log.phase("relabel namespaces"):
                for namespace in namespaces:
                    move_namespace(kube, namespace, plan)
        for namespace in namespaces:
            with log.phase(f"restart {namespace}"):
                restart_deployments(kube, namespace, timeout=self.timeout, progress=self.progress)
        if plan.canary:
            with log.phase("remove old revision"):
                cp.remove_control_plane(plan.from_version, plan.from_revision)
                self.on_installed(mesh_record(plan, old_still_installed=False))
        return namespaces
