"""The lab's observability addons: the real Prometheus server and Kiali's REST API.

``register_addon_workloads`` (also exported as ``register_images``, the name the lab's image
registry looks for) is the one entry point the runtime needs. What the workloads read from
``WorkloadContext.services``:
- ``"store"``: the lab's object store (ConfigMap volumes, pods/services/endpoints for Prometheus'
  discovery; PeerAuthentications, Deployments, ServiceAccount tokens for Kiali);
- ``"faults"``: the fault switchboard (``active() -> set[str]``, or a set of names); Kiali reads
  ``kiali-stale``.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_meshcheck.lab.addons.kiali import IMAGES as KIALI_IMAGES
from pytest_meshcheck.lab.addons.kiali import kiali_factory
from pytest_meshcheck.lab.addons.prometheus import IMAGES as PROMETHEUS_IMAGES
from pytest_meshcheck.lab.addons.prometheus import prometheus_factory
from pytest_meshcheck.lab.contract import WorkloadFactory


def registered_patterns() -> dict[str, WorkloadFactory]:
    """Every repository pattern this package serves, with its factory."""
    patterns: dict[str, WorkloadFactory] = {image: prometheus_factory for image in PROMETHEUS_IMAGES}
    patterns.update({image: kiali_factory for image in KIALI_IMAGES})
    return patterns


def register_addon_workloads(register: Callable[[str, WorkloadFactory], None]) -> None:
    """Hand every pattern to the runtime's image registry."""
    for pattern, factory in registered_patterns().items():
        register(pattern, factory)


register_images = register_addon_workloads
