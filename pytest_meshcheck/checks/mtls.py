"""mTLS evidence: the XFCC header servers see, Istio's telemetry, and Kiali's edges."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pytest_meshcheck.checks.prometheus import PrometheusClient, Sample

_XFCC_FIELD = re.compile(r'(By|Hash|Subject|URI|DNS)=("[^"]*"|[^;,]*)')


@dataclass(frozen=True, kw_only=True)
class ForwardedClientCert:
    """One element of Envoy's ``X-Forwarded-Client-Cert``."""

    by: str
    hash: str
    uri: str
    subject: str


def parse_xfcc(value: str) -> list[ForwardedClientCert]:
    """Elements of an XFCC header (comma separated; fields separated by ``;``)."""
    elements = []
    for element in value.split(","):
        fields = {key: raw.strip('"') for key, raw in _XFCC_FIELD.findall(element)}
        if fields:
            elements.append(
                ForwardedClientCert(
                    by=fields.get("By", ""),
                    hash=fields.get("Hash", ""),
                    uri=fields.get("URI", ""),
                    subject=fields.get("Subject", ""),
                )
            )
    return elements


def xfcc_from_httpbin(body: str) -> str:
    """The XFCC header from httpbin's ``/headers`` JSON (lists in go-httpbin, strings in httpbin)."""
    try:
        headers = json.loads(body).get("headers", {})
    except (ValueError, AttributeError):
        return ""
    for name, value in headers.items():
        if name.lower() == "x-forwarded-client-cert":
            return ",".join(value) if isinstance(value, list) else str(value)
    return ""


def spiffe_id(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def non_mtls_query(namespace: str) -> str:
    """Requests into ``namespace`` from known mesh workloads that did not use mutual TLS."""
    return (
        "sum by (source_workload, source_workload_namespace, destination_workload, "
        "destination_workload_namespace, connection_security_policy) ("
        f'istio_requests_total{{reporter="destination", destination_workload_namespace="{namespace}", '
        'source_workload!="unknown", connection_security_policy!="mutual_tls"})'
    )


def requests_query(namespace: str) -> str:
    return (
        f'sum(istio_requests_total{{reporter="destination", destination_workload_namespace="{namespace}"}})'
    )


def plaintext_samples(prometheus: PrometheusClient, namespace: str) -> list[Sample]:
    return [s for s in prometheus.query(non_mtls_query(namespace)) if s.value > 0]
