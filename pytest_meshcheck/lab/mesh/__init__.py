"""The Istio mesh inside the lab: istiod (CA, injection webhook, config distribution) and proxyv2.

``register_mesh_workloads`` (also exported as ``register_images``, the name the lab's image
registry looks for) is the one entry point the runtime needs; everything else is internal to the mesh.
What the workloads read from ``WorkloadContext.services``:
- ``"store"``: the lab's object store (istiod: CA secret, webhook caBundle, root ConfigMaps, config);
- ``"faults"``: the fault switchboard (``active() -> set[str]``), injection and data-plane faults;
- ``"mesh-control-plane"`` (optional): an in-process ``discovery.ControlPlane`` for proxies, instead
  of reaching istiod over the pod network at ``CA_ADDR``'s host on port 15010.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_meshcheck.lab.contract import Workload, WorkloadContext, WorkloadFactory

#: Repository globs (the lab's image registry matches normalised repositories, any tag):
#: docker.io/istio/*, gcr.io/istio-release/*, registry.istio.io/release/*, and mirrors of them.
PILOT_PATTERNS = ("*istio*/pilot",)
PROXY_PATTERNS = ("*istio*/proxyv2",)


class IstioIptables:
    """``istio-init`` (``istio-iptables ...`` on the proxy image): the lab's runtime turns traffic
    capture on from the pod spec itself, so the container only reports what it would install."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        return None

    def run(self) -> int:
        args = list(self.ctx.args)
        self.ctx.log.write("Istio iptables environment:")
        self.ctx.log.write(" ".join(args))
        self.ctx.log.write("iptables: inbound REDIRECT to 15006, outbound to 15001 (lab capture dialer)")
        return 0

    def stop(self) -> None:
        return None


def proxyv2_workload(ctx: WorkloadContext) -> Workload:
    """proxyv2 runs istio-iptables (init), or pilot-agent with Envoy (``proxy sidecar|router``)."""
    if ctx.args[:1] == ("istio-iptables",) or ctx.command[-1:] == ("istio-iptables",):
        return IstioIptables(ctx)
    from pytest_meshcheck.lab.mesh.proxy import ProxyAgent

    return ProxyAgent(ctx)


def pilot_workload(ctx: WorkloadContext) -> Workload:
    from pytest_meshcheck.lab.mesh.istiod import Istiod

    return Istiod(ctx)


def register_mesh_workloads(register: Callable[[str, WorkloadFactory], None]) -> None:
    for pattern in PILOT_PATTERNS:
        register(pattern, pilot_workload)
    for pattern in PROXY_PATTERNS:
        register(pattern, proxyv2_workload)


register_images = register_mesh_workloads
