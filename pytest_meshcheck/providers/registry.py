"""The built-in mapping from ``--meshcheck-cluster`` to a provider.

Provider modules are imported only when chosen, so a lab run never imports boto3 and an EKS run
never starts lab code.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.base import Provider
from pytest_meshcheck.settings import Settings

#: cluster kind -> "module:factory" (a callable taking Settings and returning a Provider)
BUILTIN_PROVIDERS: Mapping[str, str] = {
    "lab": "pytest_meshcheck.providers.lab:LabProvider",
    "kubeconfig": "pytest_meshcheck.providers.kubeconfig:KubeconfigProvider",
    "eks": "pytest_meshcheck.providers.eks.provider:EksProvider",
}


def make_builtin_provider(settings: Settings) -> Provider:
    target = BUILTIN_PROVIDERS[settings.cluster]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ProviderError(
            f"the {settings.cluster!r} provider is not available in this installation "
            f"({module_name}.{attr}: {exc})"
        ) from exc
    provider: Provider = factory(settings)
    return provider


def lab_fault_names() -> Mapping[str, str]:
    """The lab's fault catalogue (name -> what it breaks), for validating ``--meshcheck-lab-faults``.

    The providers layer is the harness's only door into ``lab/``; this reads public data only.
    """
    from pytest_meshcheck.lab.faults import FAULTS

    return FAULTS
