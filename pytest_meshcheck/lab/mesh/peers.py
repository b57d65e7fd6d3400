"""What sidecars tell each other about themselves, and how telemetry names both ends of a hop.

Istio's sidecars exchange workload metadata (``x-envoy-peer-metadata`` on HTTP) so each reporter
can label the *other* end; the lab's proxies carry the same facts in the same headers (JSON rather
than Envoy's protobuf: only lab proxies read them, and they strip them before the app sees them).
"""

from __future__ import annotations

import base64
import json

from pytest_meshcheck.lab.mesh.config import MeshService, MeshWorkload
from pytest_meshcheck.lab.mesh.telemetry import DestinationService, Peer

PEER_METADATA_HEADER = "x-envoy-peer-metadata"
PEER_METADATA_ID_HEADER = "x-envoy-peer-metadata-id"


def response_flags(flags: list[str]) -> str:
    """Envoy's ``%RESPONSE_FLAGS%``: comma-joined, ``-`` when none."""
    return ",".join(flags) if flags else "-"


def encode_peer(peer: Peer) -> str:
    return base64.b64encode(json.dumps(peer.to_json(), sort_keys=True).encode()).decode()


def decode_peer(value: str) -> Peer | None:
    try:
        data = json.loads(base64.b64decode(value.encode(), validate=True))
    except (ValueError, TypeError):
        return None
    return Peer.from_json(data) if isinstance(data, dict) else None


def peer_of(workload: MeshWorkload, principal: str, cluster: str) -> Peer:
    return Peer(
        workload=workload.workload_name,
        workload_namespace=workload.namespace,
        principal=principal,
        app=workload.app,
        version=workload.version,
        canonical_service=workload.canonical_service,
        canonical_revision=workload.canonical_revision,
        cluster=cluster,
    )


def destination_service(service: MeshService | None) -> DestinationService:
    if service is None:
        return DestinationService()
    return DestinationService(host=service.hostname, name=service.name, namespace=service.namespace)
