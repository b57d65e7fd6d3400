"""Any existing cluster, reached through a kubeconfig (or the in-cluster service account).

The run does not own such a cluster, so provisioning only proves it answers (and with which
credentials and version), and teardown leaves the cluster itself alone; what the run installs on
it is removed by the installers' own teardown.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_meshcheck.kube.client import connect
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.settings import Settings


def default_kubeconfig() -> Path:
    env_path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(env_path) if env_path else Path.home() / ".kube" / "config"


class KubeconfigProvider:
    name = "kubeconfig"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def provision(self) -> ClusterHandle:
        kubeconfig = self.settings.kubeconfig
        kube = connect(kubeconfig, self.settings.context)
        try:
            version = kube.server_version()
        finally:
            kube.close()
        path = kubeconfig if kubeconfig is not None else default_kubeconfig()
        context = self.settings.context or _current_context(path)
        return ClusterHandle(
            provider=self.name,
            name=context or "in-cluster",
            kubeconfig=path,
            context=context,
            details={"kubernetes_version": version, "api": kube.description},
        )

    def teardown(self) -> None:
        """Nothing to remove: the cluster existed before the run and outlives it."""


def _current_context(path: Path) -> str:
    if not path.exists():
        return ""
    from kubernetes.config import list_kube_config_contexts

    _, current = list_kube_config_contexts(config_file=str(path))  # type: ignore[no-untyped-call]
    return str((current or {}).get("name", ""))
