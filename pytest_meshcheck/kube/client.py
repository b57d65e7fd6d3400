"""Connecting to a cluster, and turning the kubernetes client's exceptions into ours.

This package is the only code that imports the kubernetes client; everything above it sees
``Kube`` and the exception tree in ``pytest_meshcheck.errors``. The client is imported lazily so
that loading the plugin stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_meshcheck.errors import ClusterUnreachable, KubeApiError, MeshcheckError, ProviderError

T = TypeVar("T")

#: HTTP statuses worth retrying: throttling and the API server's own transient failures.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class ApiFailure:
    """What an ApiException said, reduced to the fields people act on."""

    status: int
    reason: str
    message: str


def api_failure(exc: BaseException) -> ApiFailure | None:
    """The ``Status`` carried by a kubernetes ``ApiException``, or None for other exceptions."""
    from kubernetes.client.exceptions import ApiException

    if not isinstance(exc, ApiException):
        return None
    reason = str(exc.reason or "")
    message = reason
    if exc.body:
        import json

        try:
            body = json.loads(exc.body)
        except (ValueError, TypeError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
    return ApiFailure(status=int(exc.status or 0), reason=reason, message=message)


def is_not_found(exc: BaseException) -> bool:
    failure = api_failure(exc)
    return failure is not None and failure.status == 404


def is_connection_error(exc: BaseException) -> bool:
    import urllib3.exceptions

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError) and api_failure(exc) is None


def translate(exc: BaseException, action: str) -> MeshcheckError:
    """Our exception for a failed API call; ``action`` says what we were doing."""
    if isinstance(exc, MeshcheckError):
        return exc
    failure = api_failure(exc)
    if failure is not None:
        if failure.status == 0:  # the client's own wrapper for TLS and connection failures
            return ClusterUnreachable(f"{action}: the Kubernetes API did not answer ({failure.reason})")
        if failure.status in (401, 403):
            return ClusterUnreachable(
                f"{action}: the API server refused our credentials ({failure.status} {failure.reason}: "
                f"{failure.message})"
            )
        return KubeApiError(
            f"{action}: {failure.status} {failure.reason}: {failure.message}",
            status=failure.status,
            reason=failure.reason,
        )
    if is_connection_error(exc):
        return ClusterUnreachable(
            f"{action}: the Kubernetes API did not answer ({type(exc).__name__}: {exc})"
        )
    return KubeApiError(f"{action}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Run a block of client calls, re-raising anything as our exception tree."""
    try:
        yield
    except MeshcheckError:
        raise
    except Exception as exc:
        raise translate(exc, action) from exc


def is_transient(exc: BaseException) -> bool:
    failure = api_failure(exc)
    if failure is not None:
        return failure.status in TRANSIENT_STATUSES
    return is_connection_error(exc)


def with_retries(
    call: Callable[[], T],
    *,
    action: str,
    attempts: int = 5,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``call``, retrying transient API failures with exponential backoff.

    Only for API plumbing (reads, applies, deletes): never wrap an assertion in this, or a real
    regression would be retried away.
    """
    import time

    pause = sleep or time.sleep
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MeshcheckError:
            raise
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise translate(exc, action) from exc
            pause(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


class Kube:
    """A configured client for one cluster: typed APIs, the dynamic client, raw requests."""

    def __init__(self, api_client: Any, *, description: str) -> None:
        self.api_client = api_client
        self.description = description
        self._dynamic: Any = None

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    @property
    def dynamic(self) -> Any:
        """The discovery-backed dynamic client (any kind, CRDs included), built on first use."""
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            self._dynamic = with_retries(
                lambda: DynamicClient(self.api_client), action=f"discovering the API of {self.description}"
            )
        return self._dynamic

    def refresh_discovery(self) -> None:
        """Forget discovered kinds (after applying CRDs)."""
        if self._dynamic is not None:
            self._dynamic.resources.invalidate_cache()

    def server_version(self) -> str:
        """``gitVersion`` of the API server; the first call that proves the cluster answers."""
        from kubernetes import client

        info = with_retries(
            lambda: client.VersionApi(self.api_client).get_code(),
            action=f"asking {self.description} for its version",
            attempts=3,
        )
        return str(info.git_version)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()


def connect(kubeconfig: Path | None, context: str = "") -> Kube:
    """A ``Kube`` for ``kubeconfig`` (default: $KUBECONFIG, then ~/.kube/config) and ``context``.

    With no kubeconfig file anywhere and a service-account token mounted, the in-cluster config is
    used, so the harness can run as a Job inside the cluster it checks.
    """
    import os

    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig
    if path is None:
        env_path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = Path(env_path) if env_path else Path.home() / ".kube" / "config"
    if not path.exists():
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException as exc:
                raise ProviderError(f"in-cluster configuration failed: {exc}") from exc
            return Kube(client.ApiClient(configuration), description="the in-cluster API server")
        raise ProviderError(
            f"kubeconfig {path} does not exist; pass --meshcheck-kubeconfig (env MESHCHECK_KUBECONFIG) "
            "or set KUBECONFIG"
        )
    try:
        contexts, current = config.list_kube_config_contexts(config_file=str(path))
    except (ConfigException, OSError, ValueError) as exc:
        raise ProviderError(f"kubeconfig {path} cannot be read: {exc}") from exc
    except Exception as exc:  # YAML errors surface as yaml.YAMLError subclasses
        raise ProviderError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    names = [entry.get("name", "") for entry in contexts or []]
    if context and context not in names:
        raise ProviderError(
            f"context {context!r} is not in kubeconfig {path}; contexts there: {', '.join(names) or 'none'} "
            "(--meshcheck-context, env MESHCHECK_CONTEXT)"
        )
    chosen = context or (current or {}).get("name", "")
    if not chosen:
        raise ProviderError(f"kubeconfig {path} has no current-context; pass --meshcheck-context")
    try:
        api_client = config.new_client_from_config(
            config_file=str(path), context=chosen, persist_config=False
        )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"kubeconfig {path}, context {chosen!r} is unusable: {exc}") from exc
    return Kube(api_client, description=f"context {chosen!r} of {path}")
