"""The Prometheus workload's discovery endpoint: HTTP SD answers computed from the lab's objects.

Prometheus polls ``/sd/<n>`` every refresh interval; each answer lists the objects afresh, so new
pods, phase changes and deletions show up within one interval, as with a watch-based discovery.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_meshcheck.lab.addons import discovery
from pytest_meshcheck.lab.addons.mounts import ObjectReader
from pytest_meshcheck.lab.addons.promconfig import SdSpec
from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.resources import GVR

PODS = GVR.core("pods")
SERVICES = GVR.core("services")
ENDPOINTS = GVR.core("endpoints")
NODES = GVR.core("nodes")


class DiscoverySource:
    """Lists what one ``SdSpec`` selects and turns it into target groups."""

    def __init__(self, store: ObjectReader) -> None:
        self.store = store

    def _list(self, gvr: GVR, spec: SdSpec, *, selected: bool = True) -> list[dict[str, Any]]:
        labels = spec.label_selector if selected else ""
        fields = spec.field_selector if selected else ""
        if not spec.namespaces or gvr == NODES:
            return self.store.list(gvr, None, label_selector=labels, field_selector=fields)[0]
        items: list[dict[str, Any]] = []
        for namespace in spec.namespaces:
            items += self.store.list(gvr, namespace, label_selector=labels, field_selector=fields)[0]
        return items

    def targets(self, spec: SdSpec) -> list[discovery.TargetGroup]:
        if spec.role == "pod":
            return discovery.pod_targets(self._list(PODS, spec))
        if spec.role == "service":
            return discovery.service_targets(self._list(SERVICES, spec))
        if spec.role == "node":
            return discovery.node_targets(self._list(NODES, spec))
        services = {_key(s): s for s in self._list(SERVICES, spec, selected=False)}
        pods = {_key(p): p for p in self._list(PODS, spec, selected=False)}
        return discovery.endpoints_targets(self._list(ENDPOINTS, spec), services, pods)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class DiscoveryServer:
    """Serves ``/sd/<index>`` for the translated config's discoveries on ``ip`` (any free port)."""

    def __init__(self, ip: str, source: DiscoverySource, specs: tuple[SdSpec, ...] = ()) -> None:
        self.source = source
        self.specs = specs
        self._server = HttpServer(ip, 0, self._handle, name="prometheus-sd")

    @property
    def base_url(self) -> str:
        return f"http://{self._server.ip}:{self._server.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, request: Request) -> Response:
        head, _, index = request.path.rpartition("/")
        if request.method != "GET" or head != "/sd" or not index.isdigit() or int(index) >= len(self.specs):
            return Response(status=404, body=b"not found\n")
        try:
            groups = self.source.targets(self.specs[int(index)])
        except Exception as exc:  # the API is unavailable: Prometheus keeps its last targets
            return Response(status=503, body=f"discovery failed: {exc}\n".encode())
        return Response(headers=[("Content-Type", "application/json")], body=json.dumps(groups).encode())
