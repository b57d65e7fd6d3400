"""The Lab: one Kubernetes-compatible cluster on loopback, assembled from its parts.

``LabCore`` is everything but the HTTPS front door: the store, the controllers, the kubelet and
the network (address plan, DNS, kube-proxy). In-process callers and tests use it directly.
``Lab`` adds the API server and the kubeconfig, which is what kubectl and the harness see.

Start order mirrors a real cluster's: the store and its admission (IP allocation), then nodes,
then controllers and the kubelet; stop order is the reverse, and ``stop`` releases every socket
and the lab's address block, so two labs (or a lab started again) never collide.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_meshcheck.lab.contract import WorkloadFactory
from pytest_meshcheck.lab.controllers.allocation import ServiceAllocator
from pytest_meshcheck.lab.controllers.base import Controller
from pytest_meshcheck.lab.controllers.deployment import DeploymentController
from pytest_meshcheck.lab.controllers.faults import FaultController, FaultSwitchboard
from pytest_meshcheck.lab.controllers.jobs import JobController
from pytest_meshcheck.lab.controllers.nodes import NodeSpec, register_node
from pytest_meshcheck.lab.controllers.replicaset import ReplicaSetController
from pytest_meshcheck.lab.controllers.scheduler import Scheduler
from pytest_meshcheck.lab.controllers.serviceaccounts import ServiceAccountController
from pytest_meshcheck.lab.controllers.services import ServiceController
from pytest_meshcheck.lab.errors import AlreadyExists, NotFound, StoreError
from pytest_meshcheck.lab.gc import GarbageCollector
from pytest_meshcheck.lab.runtime.addresses import AddressPlan, BlockClaim, loopback_routes_all_of_127
from pytest_meshcheck.lab.runtime.dns import ClusterDNS
from pytest_meshcheck.lab.runtime.images import ImageRegistry
from pytest_meshcheck.lab.runtime.kubelet import Kubelet
from pytest_meshcheck.lab.runtime.kubeproxy import KubeProxy
from pytest_meshcheck.lab.store import GVR, Store

log = logging.getLogger(__name__)

NAMESPACES = GVR.core("namespaces")
SERVICES = GVR.core("services")
ENDPOINTS = GVR.core("endpoints")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


#: Packages that contribute images: ``module:function``, the function taking ``register(pattern,
#: factory)``. A package that is not there (yet) contributes nothing.
IMAGE_PROVIDERS: tuple[str, ...] = (
    "pytest_meshcheck.lab.workloads:register_workloads",
    "pytest_meshcheck.lab.mesh:register_images",
    "pytest_meshcheck.lab.addons:register_images",
)


def default_registry(extra: Mapping[str, WorkloadFactory] | None = None) -> ImageRegistry:
    """Every image the lab's packages provide (Bookinfo, httpbin, curl, Istio, addons), then any
    extra images given (later registrations win)."""
    registry = ImageRegistry()
    for target in IMAGE_PROVIDERS:
        module_name, _, function = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        register = getattr(module, function, None)
        if callable(register):
            register(registry.register)
    for pattern, factory in (extra or {}).items():
        registry.register(pattern, factory)
    return registry


class LabCore:
    """Store + controllers + kubelet + network, without the API server."""

    def __init__(
        self,
        name: str = "lab",
        *,
        nodes: int = 1,
        registry: ImageRegistry | None = None,
        base_backoff: float = 10.0,
        max_backoff: float = 300.0,
        services: Mapping[str, Any] | None = None,
        store: Store | None = None,
        faults: Sequence[str] = (),
    ) -> None:
        if not loopback_routes_all_of_127():
            raise RuntimeError(
                "the lab needs every 127.x.y.z address to be local (Linux routes 127.0.0.0/8 to lo; "
                "this system does not)"
            )
        if nodes < 1:
            raise ValueError("a lab needs at least one node")
        self.name = name
        self.store = store or Store()
        self.registry = registry or default_registry()
        self.dns = ClusterDNS()
        self.proxy = KubeProxy()
        self._claim: BlockClaim | None = None
        self._node_count = nodes
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._initial_faults = tuple(faults)
        self.faults = FaultSwitchboard(self._initial_faults)
        #: What control-plane workloads find in ``WorkloadContext.services``.
        self._services: dict[str, Any] = {
            "store": self.store,
            "faults": self.faults,
            "lab_name": name,
            **dict(services or {}),
        }
        self.addresses: AddressPlan | None = None
        self.nodes: dict[str, str] = {}
        self.controllers: list[Controller] = []
        self.gc: GarbageCollector | None = None
        self.kubelet: Kubelet | None = None
        self.allocator: ServiceAllocator | None = None
        self._started = False

    def start(self) -> None:
        self._claim = BlockClaim.acquire()
        self.addresses = AddressPlan(self._claim.block)
        self.allocator = ServiceAllocator(self.addresses)
        self.store.add_admission("service-allocation", mutate=self.allocator.mutate)
        for namespace in SYSTEM_NAMESPACES:
            with contextlib.suppress(AlreadyExists):
                self.store.create(
                    NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                )
        names = ["lab-control-plane"] + [
            f"lab-worker{'' if i == 1 else i}" for i in range(1, self._node_count)
        ]
        for index, node_name in enumerate(names):
            spec = NodeSpec(name=node_name, ip=self.addresses.node_ip(index))
            register_node(self.store, spec, control_plane=index == 0)
            self.nodes[node_name] = spec.ip
        self.gc = GarbageCollector(self.store)
        self.gc.start()
        fault_controller = FaultController(self.store, self.faults)
        fault_controller.seed(self._initial_faults)
        self.controllers = [
            fault_controller,
            ServiceAccountController(self.store),
            Scheduler(self.store),
            ReplicaSetController(self.store),
            DeploymentController(self.store),
            JobController(self.store),
            ServiceController(
                self.store,
                allocator=self.allocator,
                proxy=self.proxy,
                dns=self.dns,
                node_ips=list(self.nodes.values()),
            ),
        ]
        for controller in self.controllers:
            controller.start()
        self.kubelet = Kubelet(
            self.store,
            nodes=self.nodes,
            registry=self.registry,
            dns=self.dns,
            addresses=self.addresses,
            base_backoff=self._base_backoff,
            max_backoff=self._max_backoff,
            services=self._services,
        )
        self.kubelet.start()
        self._started = True

    def expose_api(self, host: str, port: int) -> None:
        """Make ``kubernetes.default.svc`` lead to the API server, as on every cluster."""
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            },
        }
        with contextlib.suppress(AlreadyExists):
            self.store.create(SERVICES, service, namespace="default")
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [
                {"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            ],
        }
        try:
            current = self.store.get(ENDPOINTS, "default", "kubernetes")
        except NotFound:
            self.store.create(ENDPOINTS, endpoints, namespace="default")
        else:
            current["subsets"] = endpoints["subsets"]
            self.store.update(ENDPOINTS, current)

    def stop(self) -> None:
        """Idempotent; safe after a partial ``start``."""
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        for controller in reversed(self.controllers):
            with contextlib.suppress(Exception):
                controller.stop()
        self.controllers = []
        if self.gc is not None:
            self.gc.stop()
            self.gc = None
        self.proxy.stop()
        with contextlib.suppress(StoreError):
            self.store.remove_admission("service-allocation")
        if self._claim is not None:
            self._claim.release()
            self._claim = None
        self._started = False


class Lab:
    """A LabCore behind an HTTPS API server, with a kubeconfig on disk (what kubectl uses)."""

    def __init__(
        self,
        state_dir: Path,
        name: str = "lab",
        *,
        nodes: int = 1,
        registry: ImageRegistry | None = None,
        extra_images: Mapping[str, WorkloadFactory] | None = None,
        api_port: int = 0,
        base_backoff: float = 10.0,
        max_backoff: float = 300.0,
        kubeconfig: Path | None = None,
        faults: Sequence[str] = (),
    ) -> None:
        self.state_dir = Path(state_dir)
        self.name = name
        self.kubeconfig = kubeconfig or self.state_dir / "kubeconfig"
        self._api_port = api_port
        self.core = LabCore(
            name,
            nodes=nodes,
            registry=registry or default_registry(extra_images),
            base_backoff=base_backoff,
            max_backoff=max_backoff,
            faults=faults,
        )
        self.api: Any = None

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def url(self) -> str:
        return str(self.api.url) if self.api is not None else ""

    def start(self) -> None:
        from pytest_meshcheck.lab.apiserver import ApiServer

        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.core.start()
            assert self.core.kubelet is not None
            self.api = ApiServer(
                self.core.store,
                runtime=self.core.kubelet,
                host="127.0.0.1",
                port=self._api_port,
                state_dir=self.state_dir,
            )
            self.api.start()
            self.core.expose_api("127.0.0.1", int(self.url.rsplit(":", 1)[1].rstrip("/")))
            self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            self.api.write_kubeconfig(self.kubeconfig, self.name)
            self.core.kubelet.services.update({"kubeconfig": str(self.kubeconfig), "api_url": self.url})
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.stop()
            self.api = None
        self.core.stop()

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def node_names(lab: LabCore) -> Sequence[str]:
    return list(lab.nodes)
