"""Finding how a Service is reached from where pytest runs.

Cloud clusters expose the ingress gateway through a load balancer whose address appears some time
after the Service (and, on AWS, whose DNS name resolves later still); kind-like clusters expose a
node address and a NodePort; anything else is reachable through the API server's service proxy.
The first of these that answers a TCP connect wins, and the answer says which way it took.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from pytest_meshcheck.errors import KubeApiError, ReadinessTimeout
from pytest_meshcheck.kube.client import Kube, translated
from pytest_meshcheck.kube.wait import Progress, wait_until


@dataclass(frozen=True, kw_only=True)
class ServiceAddress:
    """A base URL for a Service port and how it was found.

    ``via`` is ``loadbalancer``, ``nodeport``, or ``apiserver`` (requests then need the API
    server's credentials: use ``kube.proxy.service_request`` rather than a plain HTTP client).
    """

    url: str
    via: str
    host: str = ""
    port: int = 0


def _service_port(service: Any, port: int | str) -> Any:
    for candidate in service.spec.ports or []:
        if port in (candidate.name, candidate.port):
            return candidate
    names = ", ".join(f"{p.name or '-'}:{p.port}" for p in service.spec.ports or [])
    raise KubeApiError(
        f"service {service.metadata.namespace}/{service.metadata.name} has no port {port!r} (ports: {names})"
    )


def tcp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _node_addresses(kube: Kube) -> list[str]:
    nodes = kube.core.list_node().items
    external: list[str] = []
    internal: list[str] = []
    for node in nodes:
        for address in node.status.addresses or []:
            if address.type == "ExternalIP":
                external.append(address.address)
            elif address.type == "InternalIP":
                internal.append(address.address)
    return external + internal


def reach_service(
    kube: Kube,
    namespace: str,
    name: str,
    port: int | str,
    *,
    scheme: str = "http",
    lb_timeout: float = 300.0,
) -> ServiceAddress:
    """How to reach ``namespace/name`` on ``port`` (name or number) from this process.

    A LoadBalancer Service is given ``lb_timeout`` to get an address that resolves and accepts a
    connection (cloud load balancers take minutes); then NodePorts on node addresses are tried;
    the API server's service proxy is the fallback that always exists.
    """
    with translated(f"reading service {namespace}/{name}"):
        service = kube.core.read_namespaced_service(name, namespace)
    service_port = _service_port(service, port)
    if service.spec.type == "LoadBalancer":
        found: list[ServiceAddress] = []

        def load_balancer_answers() -> Progress:
            current = kube.core.read_namespaced_service(name, namespace)
            # a Service the controllers have not seen yet has no status at all
            balancer = current.status.load_balancer if current.status is not None else None
            ingress = (balancer.ingress or []) if balancer is not None else []
            if not ingress:
                return Progress(False, "no load balancer address assigned yet")
            host = ingress[0].hostname or ingress[0].ip
            try:
                socket.getaddrinfo(host, service_port.port)
            except OSError:
                return Progress(False, f"load balancer {host} does not resolve yet")
            if not tcp_answers(host, service_port.port):
                return Progress(
                    False, f"load balancer {host}:{service_port.port} does not accept connections yet"
                )
            found.append(
                ServiceAddress(
                    url=f"{scheme}://{host}:{service_port.port}",
                    via="loadbalancer",
                    host=host,
                    port=service_port.port,
                )
            )
            return Progress(True, f"{host}:{service_port.port}")

        try:
            wait_until(
                load_balancer_answers,
                what=f"the load balancer of service {namespace}/{name}",
                timeout=lb_timeout,
                interval=2.0,
            )
            return found[0]
        except ReadinessTimeout:
            pass  # fall through to NodePort and the API server, which may still work
    if service.spec.type in ("LoadBalancer", "NodePort") and service_port.node_port:
        with translated("listing node addresses"):
            addresses = _node_addresses(kube)
        for host in addresses:
            if tcp_answers(host, service_port.node_port):
                return ServiceAddress(
                    url=f"{scheme}://{host}:{service_port.node_port}",
                    via="nodeport",
                    host=host,
                    port=service_port.node_port,
                )
    host = kube.api_client.configuration.host.rstrip("/")
    return ServiceAddress(
        url=f"{host}/api/v1/namespaces/{namespace}/services/{name}:{service_port.port}/proxy",
        via="apiserver",
    )


def delete_load_balancer_services(kube: Kube, *, timeout: float) -> list[str]:
    """Delete every LoadBalancer Service in the cluster and wait until they are gone."""
    from pytest_meshcheck.kube.client import is_not_found

    with translated("listing services"):
        services = [
            s for s in kube.core.list_service_for_all_namespaces().items if s.spec.type == "LoadBalancer"
        ]
    names = [f"{s.metadata.namespace}/{s.metadata.name}" for s in services]
    for service in services:
        try:
            kube.core.delete_namespaced_service(service.metadata.name, service.metadata.namespace)
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def gone() -> Progress:
        remaining = [
            f"{s.metadata.namespace}/{s.metadata.name}"
            for s in kube.core.list_service_for_all_namespaces().items
            if s.spec.type == "LoadBalancer"
        ]
        return Progress(not remaining, "still present: " + ", ".join(remaining) if remaining else "gone")

    wait_until(gone, what="deletion of LoadBalancer services", timeout=timeout, interval=2.0)
    return names
