"""The contract between the lab's runtime (the "kubelet") and the workloads it runs.

A container in the lab is a Python object, not a process image. The runtime looks its image up in
the image registry (``lab/images.py``), builds a ``WorkloadContext`` for it and calls ``start``.
Workloads never reach into the store or the runtime: all they get is this context. That keeps the
Bookinfo apps, the sidecar proxy, istiod, Prometheus and Kiali independent of each other and of the
API server, exactly as containers are on a real node.

Networking, as on a real pod:
- Every pod has its own loopback address, ``pod_ip`` (127.x.y.z), that other pods reach.
- A container listens on ``bind_ip``. Without a sidecar that is ``pod_ip``. With an injected
  sidecar whose traffic capture is active, app containers bind to the pod's private ``local_ip``
  (the pod's "localhost") and the sidecar owns ``pod_ip`` on the app's ports: inbound traffic
  reaches the app only through the sidecar, as iptables REDIRECT makes it on a real node.
- Outbound connections go through ``dialer``. Plain pods get a dialer that resolves cluster DNS
  names and connects directly (ClusterIPs are served by the lab's kube-proxy); captured pods get a
  dialer that connects to the sidecar's outbound listener and announces the original destination
  with a PROXY protocol v1 line, the lab's stand-in for SO_ORIGINAL_DST.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Port of the sidecar's outbound capture listener (Envoy's virtualOutbound is 15001 too).
SIDECAR_OUTBOUND_PORT = 15001


class Resolver(Protocol):
    """Cluster DNS: ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local`` and pod
    hostnames, relative to the asking pod's namespace. IP literals resolve to themselves."""

    def resolve(self, host: str, namespace: str) -> str:
        """Return an IPv4 address; raise ``LookupError`` when the name does not exist."""
        ...


class Dialer(Protocol):
    """Opens outbound TCP connections for a container (see the module docstring)."""

    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket: ...


class LogSink(Protocol):
    """A container's stdout/stderr, as ``kubectl logs`` shows it."""

    def write(self, line: str, *, stream: str = "stdout") -> None: ...


@dataclass(kw_only=True)
class WorkloadContext:
    """Everything a container may know about where it runs."""

    namespace: str
    pod_name: str
    pod_uid: str
    container_name: str
    image: str
    #: The image's tag (``1.27.1`` for ``docker.io/istio/proxyv2:1.27.1``), "" when untagged.
    image_tag: str
    pod_ip: str
    local_ip: str
    bind_ip: str
    hostname: str
    service_account: str
    node_name: str
    env: Mapping[str, str]
    args: tuple[str, ...]
    command: tuple[str, ...]
    #: ``containerPort`` values declared by this container.
    ports: tuple[int, ...]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    dialer: Dialer
    resolver: Resolver
    log: LogSink
    #: Set by the runtime when the container is being stopped; long loops must watch it.
    stopping: threading.Event
    #: The whole pod object as stored (read-only copy), for workloads that need more (sidecars).
    pod: Mapping[str, Any] = field(default_factory=dict)
    #: Lab-wide services for control-plane workloads (istiod, Prometheus, Kiali): an in-process
    #: API client, the fault switchboard, the lab's kubeconfig path ... keyed by name.
    services: Mapping[str, Any] = field(default_factory=dict)
    #: The container's volume mounts as the runtime projected them: ``mountPath`` -> a directory on
    #: the lab's machine holding the volume's files (ConfigMap and Secret keys, emptyDir). A
    #: workload that runs a real program points it there wherever the image expects the path.
    volumes: Mapping[str, str] = field(default_factory=dict)


class Workload(Protocol):
    """A running container. ``start`` binds its listeners and returns promptly (serving happens
    on threads the workload owns); ``stop`` closes them and joins its threads."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


#: ``run(argv, stdin, stdout, stderr) -> exit code``; streams are binary file-likes. A workload may
#: offer extra commands (``pilot-agent`` in istio-proxy, say) through an optional
#: ``exec_commands() -> Mapping[str, ExecHandler]`` method; every container also answers the lab
#: shell's commands (curl, sh -c, cat, env, hostname ...).
ExecHandler = Callable[[list[str], Any, Any, Any], int]

#: Builds the workload for a container from its context.
WorkloadFactory = Callable[[WorkloadContext], Workload]
