"""Istio standard-metric exposition lines with the real label names, for fake sidecars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PEER_FIELDS = (
    "workload",
    "workload_namespace",
    "principal",
    "app",
    "version",
    "canonical_service",
    "canonical_revision",
    "cluster",
)


@dataclass(frozen=True)
class Peer:
    workload: str
    namespace: str
    app: str
    version: str
    service_account: str = "default"

    def labels(self, prefix: str) -> dict[str, str]:
        return {
            f"{prefix}_workload": self.workload,
            f"{prefix}_workload_namespace": self.namespace,
            f"{prefix}_principal": f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}",
            f"{prefix}_app": self.app,
            f"{prefix}_version": self.version,
            f"{prefix}_canonical_service": self.app,
            f"{prefix}_canonical_revision": self.version,
            f"{prefix}_cluster": "Kubernetes",
        }


def request_labels(
    source: Peer,
    dest: Peer,
    service: str,
    *,
    reporter: str,
    code: int = 200,
    mtls: bool = True,
    flags: str = "-",
) -> dict[str, str]:
    labels = {"reporter": reporter, **source.labels("source"), **dest.labels("destination")}
    labels.update(
        destination_service=f"{service}.{dest.namespace}.svc.cluster.local",
        destination_service_name=service,
        destination_service_namespace=dest.namespace,
        request_protocol="http",
        response_code=str(code),
        grpc_response_status="",
        response_flags=flags,
        connection_security_policy="mutual_tls" if mtls else "none",
    )
    return labels


def exposition(name: str, series: Mapping[tuple[tuple[str, str], ...], float], kind: str = "counter") -> str:
    lines = [f"# TYPE {name} {kind}"]
    for labels, value in series.items():
        body = ",".join(f'{key}="{value_}"' for key, value_ in labels)
        lines.append(f"{name}{{{body}}} {value}")
    return "\n".join(lines) + "\n"


def key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))
