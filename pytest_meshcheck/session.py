"""The run's state: settings, the provider and the cluster handle, provisioned once per run.

One ``MeshcheckSession`` is registered on the plugin manager under ``SESSION_PLUGIN_NAME``. On
the process that owns the cluster (the only process without xdist, the controller with it) it
provisions lazily on first use, or eagerly when the first xdist worker is configured, and tears
down once at the end. xdist workers never provision: they receive the settings and the handle
(or the provisioning error) through ``workerinput`` and only use them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_meshcheck.errors import HarnessError, MeshcheckError, ProviderError
from pytest_meshcheck.providers.base import ClusterHandle, Provider
from pytest_meshcheck.settings import Settings

if TYPE_CHECKING:
    from pytest_meshcheck.kube.client import Kube

SESSION_PLUGIN_NAME = "meshcheck-session"

WORKERINPUT_SETTINGS = "meshcheck_settings"
WORKERINPUT_HANDLE = "meshcheck_handle"
WORKERINPUT_ERROR = "meshcheck_provision_error"
WORKERINPUT_RUN_DIR = "meshcheck_run_dir"
WORKERINPUT_ERROR_EVIDENCE = "meshcheck_provision_error_evidence"


class MeshcheckSession:
    """Session state, also a pytest plugin object (it implements the xdist hand-off hooks)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self._lock = threading.Lock()
        self._provider: Provider | None = None
        self._handle: ClusterHandle | None = None
        self._error: str | None = None
        self._error_evidence: dict[str, str] = {}
        self._torn_down = False
        self._previous_sigterm: Any = None
        self._kube: Kube | None = None
        self._last_progress: dict[str, float] = {}
        if self.is_worker:
            workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
            if WORKERINPUT_HANDLE in workerinput:
                self._handle = ClusterHandle.from_json(workerinput[WORKERINPUT_HANDLE])
            self._error = workerinput.get(WORKERINPUT_ERROR)
            self._error_evidence = dict(workerinput.get(WORKERINPUT_ERROR_EVIDENCE) or {})
            self.run_dir = Path(
                workerinput.get(WORKERINPUT_RUN_DIR) or tempfile.mkdtemp(prefix="meshcheck-run-")
            )
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="meshcheck-run-"))

    # ----------------------------------------------------------------------------------------
    # Provisioning
    # ----------------------------------------------------------------------------------------

    @property
    def provisioned(self) -> bool:
        return self._handle is not None

    def handle_or_none(self) -> ClusterHandle | None:
        """The handle if the cluster is already up; never provisions (for reports)."""
        return self._handle

    def cluster(self) -> ClusterHandle:
        """The cluster handle, provisioning the cluster on first use (owner process only)."""
        if self._handle is not None:
            return self._handle
        if self._error is not None:
            raise ProviderError(
                f"cluster provisioning failed earlier in this run: {self._error}",
                evidence=self._error_evidence,
            )
        if self.is_worker:
            raise HarnessError("an xdist worker got no cluster handle from the controller")
        with self._lock:
            handle = self._handle if self._handle is not None else self._provision()
        return handle

    def _provision(self) -> ClusterHandle:
        provider = self.config.hook.pytest_meshcheck_make_provider(config=self.config, settings=self.settings)
        if provider is None:
            raise HarnessError("no provider: pytest_meshcheck_make_provider returned nothing")
        self._provider = provider
        set_cleanup = getattr(provider, "set_service_cleanup", None)
        if callable(set_cleanup):
            set_cleanup(self._delete_load_balancers)
        self._install_sigterm_handler()
        try:
            self._handle = provider.provision()
            return self._handle
        except MeshcheckError as exc:
            self._error = exc.message
            self._error_evidence = dict(exc.evidence)
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise ProviderError(f"provisioning the {self.settings.cluster} cluster failed: {exc}") from exc

    def teardown(self) -> None:
        """Tear down what this process provisioned, once; a no-op on workers and repeat calls."""
        if self.is_worker or self._torn_down:
            return
        self._torn_down = True
        problems: list[str] = []
        try:
            if self._provider is not None:
                if not self.settings.keep_cluster:
                    problems = self._remove_layers()
                if self.settings.keep_cluster:
                    reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                    if reporter is not None and self._handle is not None:
                        reporter.write_line(
                            f"meshcheck: keeping the {self._handle.provider} cluster "
                            f"{self._handle.name!r} (kubeconfig {self._handle.kubeconfig})"
                        )
                # Providers honour keep_cluster themselves (and say how to delete what they keep).
                self._provider.teardown()
        finally:
            if self._kube is not None:
                self._kube.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self._restore_sigterm_handler()
        if problems:
            # Raising here would turn a finished run into an internal error; say it loudly instead.
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            message = "meshcheck: teardown left things behind: " + "; ".join(problems)
            if reporter is not None:
                reporter.write_line(message, red=True, bold=True)
            else:
                import sys

                sys.stderr.write(message + "\n")

    # ----------------------------------------------------------------------------------------
    # What the run installs on the cluster (see install/layers.py)
    # ----------------------------------------------------------------------------------------

    def kube(self) -> Kube:
        """This process's client for the run's cluster."""
        if self._kube is None:
            from pytest_meshcheck.kube.client import connect

            handle = self.cluster()
            self._kube = connect(handle.kubeconfig, handle.context)
        return self._kube

    def layer(self, name: str) -> Mapping[str, Any]:
        """Install layer ``name`` (and what it needs) once per run; return its recorded result."""
        from pytest_meshcheck.install.layers import LayerStore
        from pytest_meshcheck.install.plan import LAYERS

        layer = LAYERS[name]
        for needed in layer.needs:
            self.layer(needed)
        return LayerStore(self.run_dir).ensure(layer, self._layer_context())

    def update_layer(self, name: str, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        """Record that layer ``name`` now consists of something else (see ``LayerStore.update``)."""
        from pytest_meshcheck.install.layers import LayerStore

        return LayerStore(self.run_dir).update(name, changes)

    def _layer_context(self) -> Any:
        from pytest_meshcheck.install.layers import LayerContext

        return LayerContext(
            kube=self.kube(), settings=self.settings, handle=self.cluster(), progress=self.progress
        )

    def progress(self, message: str, elapsed: float) -> None:
        """A progress line for long waits, at most every 10 s per message kind (owner process only)."""
        if self.is_worker:
            return
        kind = message.split(":", 1)[0]
        now = time.monotonic()
        if now - self._last_progress.get(kind, 0.0) < 10.0:
            return
        self._last_progress[kind] = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"meshcheck: {message} ({elapsed:.0f}s)")

    def _delete_load_balancers(self, handle: ClusterHandle) -> None:
        """Delete every LoadBalancer Service (the cloud load balancers behind them cost money and
        block VPC deletion) and wait until they are gone."""
        from pytest_meshcheck.kube.services import delete_load_balancer_services

        delete_load_balancer_services(self.kube(), timeout=self.settings.timeout)

    def _remove_layers(self) -> list[str]:
        """Uninstall what the run installed, unless the provider's teardown destroys the cluster."""
        if self._handle is None or getattr(self._provider, "destroys_cluster", False):
            return []
        from pytest_meshcheck.install.layers import LayerStore
        from pytest_meshcheck.install.plan import LAYERS

        store = LayerStore(self.run_dir)
        if not store.installed():
            return []
        return store.remove_all(LAYERS, self._layer_context())

    # ----------------------------------------------------------------------------------------
    # SIGTERM: CI systems stop jobs with SIGTERM; turning it into KeyboardInterrupt lets pytest
    # unwind normally, so teardown runs and nothing is left behind (EKS clusters cost money).
    # ----------------------------------------------------------------------------------------

    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def _raise_interrupt(signum: int, frame: types.FrameType | None) -> None:
            raise KeyboardInterrupt(f"received signal {signum}")

        with contextlib.suppress(ValueError, OSError):
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)

    def _restore_sigterm_handler(self) -> None:
        if self._previous_sigterm is None:
            return
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None

    # ----------------------------------------------------------------------------------------
    # pytest hooks (this object is registered as a plugin)
    # ----------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: provision before the first worker starts, hand the result over."""
        node.workerinput[WORKERINPUT_SETTINGS] = self.settings.to_json()
        node.workerinput[WORKERINPUT_RUN_DIR] = str(self.run_dir)
        if self.config.option.collectonly:
            return
        try:
            handle = self.cluster()
        except MeshcheckError as exc:
            # The original failure (not "failed earlier" from the second worker on) and its evidence.
            node.workerinput[WORKERINPUT_ERROR] = self._error or exc.message
            node.workerinput[WORKERINPUT_ERROR_EVIDENCE] = dict(self._error_evidence or exc.evidence)
        else:
            node.workerinput[WORKERINPUT_HANDLE] = handle.to_json()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.teardown()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Normally a no-op (sessionfinish tore down); covers runs that fail before a session.
        self.teardown()
