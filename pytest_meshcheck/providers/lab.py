"""The lab provider: the embedded loopback cluster, for the default run and for CI.

The lab runs as a child process (the lab daemon, ``meshcheck lab up``'s machinery), not inside
pytest. Reasons:
- the lab runs hundreds of threads (API server, controllers, every pod's workloads, kube-proxy);
  in-process they would share pytest's GIL and slow both the lab and the tests, and a wedged
  workload could hang the test process;
- under pytest-xdist only the controller provisions; a daemon outlives nothing it should not and
  is reached by every worker the same way, through the kubeconfig, exactly like EKS;
- the harness reaches the lab only through its ClusterHandle (a kubeconfig), so nothing above
  this layer can tell the lab from a real cluster;
- teardown is a signal and a wait: idempotent, safe after a partial start, and it frees every
  port because the process that held them is gone.
With ``--meshcheck-keep-cluster`` the lab is named ``meshcheck`` and left running, and the next
run reuses it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import yaml

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.base import ClusterHandle
from pytest_meshcheck.settings import Settings

KEPT_LAB_NAME = "meshcheck"


class LabProvider:
    name = "lab"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lab_name = (
            KEPT_LAB_NAME if settings.keep_cluster else f"run-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self._started = False

    def provision(self) -> ClusterHandle:
        from pytest_meshcheck.lab import daemon

        self._started = True
        try:
            state = daemon.up(
                self.lab_name,
                timeout=max(self.settings.timeout, 30.0),
                faults=tuple(self.settings.lab_faults),
            )
        except daemon.LabDaemonError as exc:
            raise ProviderError(f"the lab did not start: {exc}") from exc
        except OSError as exc:
            raise ProviderError(f"the lab could not be started: {exc}") from exc
        return ClusterHandle(
            provider=self.name,
            name=self.lab_name,
            kubeconfig=state.kubeconfig,
            context=_current_context(state.kubeconfig),
            details={
                "api": state.url,
                "lab_dir": str(state.directory),
                "lab_pid": str(state.pid),
                "lab_faults": ",".join(self.settings.lab_faults),
            },
        )

    @property
    def destroys_cluster(self) -> bool:
        """Stopping the lab discards everything in it, so uninstalling first would be wasted time."""
        return not self.settings.keep_cluster

    def teardown(self) -> None:
        """Stop the lab unless it is kept; idempotent and safe after a failed ``provision``."""
        if not self._started or self.settings.keep_cluster:
            return
        from pytest_meshcheck.lab import daemon

        try:
            daemon.down(self.lab_name)
        except OSError as exc:
            raise ProviderError(f"the lab {self.lab_name!r} could not be stopped: {exc}") from exc

    def export_diagnostics(self, directory: Path) -> list[Path]:
        """The lab daemon's log (API server, controllers, kubelet)."""
        from pytest_meshcheck.lab import daemon

        source = daemon.lab_dir(self.lab_name) / daemon.LOG_FILE
        if not source.exists():
            return []
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"lab-{self.lab_name}.log"
        shutil.copyfile(source, target)
        return [target]


def _current_context(kubeconfig: Path) -> str:
    try:
        config = yaml.safe_load(kubeconfig.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return str((config or {}).get("current-context", ""))
