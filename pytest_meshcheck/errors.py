"""The exception tree of pytest-meshcheck.

Every failure the harness raises on purpose is a ``MeshcheckError``. The subclasses say *whose*
problem it is, because a CI gate must tell a mesh regression (the change under test is bad) from an
environment problem (the cluster could not be reached, an install failed, a wait timed out) and from
a harness bug. Reports map these classes to Allure categories and to the summary's verdict.

Third-party exceptions (kubernetes ApiException, botocore ClientError, OSError ...) are wrapped in
one of these with ``raise ... from exc`` so callers never have to import a third-party type.
"""

from __future__ import annotations

from collections.abc import Mapping


class MeshcheckError(Exception):
    """Base class. ``evidence`` holds named text attachments (events, logs, object status)."""

    def __init__(self, message: str, *, evidence: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, str] = dict(evidence or {})


class ConfigError(MeshcheckError):
    """A setting has a bad value; the plugin turns it into ``pytest.UsageError`` (exit code 4)."""

    def __init__(
        self,
        message: str,
        *,
        option: str = "",
        value: str = "",
        accepted: str = "",
    ) -> None:
        super().__init__(message)
        self.option = option
        self.value = value
        self.accepted = accepted


class EnvironmentProblem(MeshcheckError):
    """The environment, not the mesh under test, is at fault: reported as *broken*, not *failed*."""


class ProviderError(EnvironmentProblem):
    """A cluster could not be provisioned, reached, authenticated against or torn down."""


class ClusterUnreachable(ProviderError):
    """The Kubernetes API did not answer (connection refused, DNS, TLS, 401/403)."""


class KubeApiError(EnvironmentProblem):
    """The Kubernetes API answered with an error the harness did not expect."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        evidence: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, evidence=evidence)
        self.status = status
        self.reason = reason


class InstallError(EnvironmentProblem):
    """Istio, an addon or an application could not be installed or removed."""


class ReadinessTimeout(EnvironmentProblem):
    """A wait ran out of time. The message says what was awaited; evidence holds the state seen."""

    def __init__(
        self,
        what: str,
        *,
        timeout_s: float,
        last_state: str = "",
        evidence: Mapping[str, str] | None = None,
    ) -> None:
        detail = f"; last seen: {last_state}" if last_state else ""
        super().__init__(f"timed out after {timeout_s:g}s waiting for {what}{detail}", evidence=evidence)
        self.what = what
        self.timeout_s = timeout_s
        self.last_state = last_state


class LoadError(EnvironmentProblem):
    """The load generator could not be started or its results could not be read."""


class CheckFailed(MeshcheckError, AssertionError):
    """A conformance check found a mesh regression.

    It subclasses ``AssertionError`` so pytest reports it as a test *failure* (not an error), and
    the assertion message is the finding a platform engineer acts on.
    """


class HarnessError(MeshcheckError):
    """A bug or misuse inside pytest-meshcheck itself (never the user's cluster or mesh)."""
