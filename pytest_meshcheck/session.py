"""The run's state: settings, the provider and the cluster handle, provisioned once per run.

One ``MeshcheckSession`` is registered on the plugin manager under ``SESSION_PLUGIN_NAME``. On
the process that owns the cluster (the only process without xdist, the controller with it) it
provisions lazily on first use, or eagerly when the first xdist worker is configured, and tears
down once at the end. xdist workers never provision: they receive the settings and the handle
(or the provisioning error) through ``workerinput`` and only use them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import types
from typing import Any

import pytest

from pytest_meshcheck.errors import HarnessError, MeshcheckError, ProviderError
from pytest_meshcheck.providers.base import ClusterHandle, Provider
from pytest_meshcheck.settings import Settings

SESSION_PLUGIN_NAME = "meshcheck-session"

WORKERINPUT_SETTINGS = "meshcheck_settings"
WORKERINPUT_HANDLE = "meshcheck_handle"
WORKERINPUT_ERROR = "meshcheck_provision_error"


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
        self._torn_down = False
        self._previous_sigterm: Any = None
        if self.is_worker:
            workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
            if WORKERINPUT_HANDLE in workerinput:
                self._handle = ClusterHandle.from_json(workerinput[WORKERINPUT_HANDLE])
            self._error = workerinput.get(WORKERINPUT_ERROR)

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
            raise ProviderError(f"cluster provisioning failed earlier in this run: {self._error}")
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
        self._install_sigterm_handler()
        try:
            self._handle = provider.provision()
            return self._handle
        except MeshcheckError as exc:
            self._error = exc.message
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise ProviderError(f"provisioning the {self.settings.cluster} cluster failed: {exc}") from exc

    def teardown(self) -> None:
        """Tear down what this process provisioned, once; a no-op on workers and repeat calls."""
        if self.is_worker or self._torn_down:
            return
        self._torn_down = True
        try:
            if self._provider is not None:
                if self.settings.keep_cluster:
                    reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                    if reporter is not None and self._handle is not None:
                        reporter.write_line(
                            f"meshcheck: keeping the {self._handle.provider} cluster "
                            f"{self._handle.name!r} (kubeconfig {self._handle.kubeconfig})"
                        )
                else:
                    self._provider.teardown()
        finally:
            self._restore_sigterm_handler()

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
        if self.config.option.collectonly:
            return
        try:
            handle = self.cluster()
        except MeshcheckError as exc:
            node.workerinput[WORKERINPUT_ERROR] = exc.message
        else:
            node.workerinput[WORKERINPUT_HANDLE] = handle.to_json()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.teardown()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Normally a no-op (sessionfinish tore down); covers runs that fail before a session.
        self.teardown()
