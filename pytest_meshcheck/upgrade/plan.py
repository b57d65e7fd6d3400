"""What an upgrade will do, decided from the settings and the installed mesh before anything changes.

The revision names follow Istio's convention for versioned control planes (``1-27-1`` for 1.27.1,
as in ``istiod-1-27-1``), so a cluster upgraded by the gate looks like one upgraded by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_meshcheck.install.istio import MeshInstall, istiod_name
from pytest_meshcheck.install.revisions import revision_label
from pytest_meshcheck.settings import Settings


def revision_for(version: str) -> str:
    """The revision name Istio's docs use for a version: ``1-27-1`` for ``1.27.1``."""
    return version.replace(".", "-")


@dataclass(frozen=True, kw_only=True)
class UpgradePlan:
    """The from and to sides of the upgrade, and how namespaces are moved between them."""

    from_version: str
    to_version: str
    strategy: str
    #: The installed control plane's revision ("" for the default revision).
    from_revision: str
    #: The revision the workloads end up on: a new one for canary, the same one in place.
    to_revision: str
    #: Canary only: namespaces are labelled with this tag, which points at ``to_revision``.
    tag: str
    error_budget: float

    @property
    def canary(self) -> bool:
        return self.strategy == "canary"

    @property
    def from_istiod(self) -> str:
        return istiod_name(self.from_revision)

    @property
    def to_istiod(self) -> str:
        return istiod_name(self.to_revision)

    @property
    def namespace_label(self) -> dict[str, str]:
        """The injection label a moved namespace carries after the upgrade."""
        if self.canary:
            return {"istio.io/rev": self.tag or revision_label(self.to_revision)}
        if self.to_revision:
            return {"istio.io/rev": self.to_revision}
        return {"istio-injection": "enabled"}

    def describe(self) -> str:
        how = (
            f"canary: {self.to_istiod} beside {self.from_istiod}"
            + (f", namespaces by tag {self.tag}" if self.tag else "")
            if self.canary
            else f"in place: {self.from_istiod} upgraded"
        )
        return f"Istio {self.from_version} -> {self.to_version} ({how})"


def plan_upgrade(settings: Settings, installed: MeshInstall) -> UpgradePlan:
    """The plan for ``--meshcheck-upgrade-to``; the target must be set (the suite skips otherwise)."""
    canary = settings.upgrade_strategy == "canary"
    return UpgradePlan(
        from_version=installed.version,
        to_version=settings.upgrade_to,
        strategy=settings.upgrade_strategy,
        from_revision=installed.revision,
        to_revision=revision_for(settings.upgrade_to) if canary else installed.revision,
        tag=settings.revision_tag if canary else "",
        error_budget=settings.upgrade_error_budget,
    )
