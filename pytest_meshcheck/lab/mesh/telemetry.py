"""Istio's standard metrics, kept per proxy and exposed in Prometheus' text format.

The names, labels and histogram buckets are Istio's (``istio_requests_total``,
``istio_request_duration_milliseconds``, ``istio_tcp_*`` ...), so Prometheus queries written for a
real mesh, Kiali's among them, read the lab's proxies unchanged. Each proxy reports what it saw from
its side: ``reporter="source"`` on the client's outbound hop, ``reporter="destination"`` on the
server's inbound hop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

#: Istio's buckets for request duration (ms).
DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
#: Buckets for request/response sizes (bytes), exponential as Istio's.
SIZE_BUCKETS_BYTES: tuple[float, ...] = tuple(float(10**n) for n in range(10))

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
REQUEST_LABELS = (
    "reporter",
    *(f"source_{f}" for f in PEER_FIELDS),
    *(f"destination_{f}" for f in PEER_FIELDS),
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
TCP_LABELS = tuple(name for name in REQUEST_LABELS if name not in ("response_code", "grpc_response_status"))

UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class Peer:
    """One end of a hop, as the metrics label it."""

    workload: str = UNKNOWN
    workload_namespace: str = UNKNOWN
    principal: str = UNKNOWN
    app: str = UNKNOWN
    version: str = UNKNOWN
    canonical_service: str = UNKNOWN
    canonical_revision: str = UNKNOWN
    cluster: str = UNKNOWN

    def labels(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}_{name}": getattr(self, name) for name in PEER_FIELDS}

    def to_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in PEER_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Peer:
        return cls(**{name: str(data[name]) for name in PEER_FIELDS if name in data})


@dataclass(frozen=True, kw_only=True)
class DestinationService:
    host: str = UNKNOWN
    name: str = UNKNOWN
    namespace: str = UNKNOWN

    def labels(self) -> dict[str, str]:
        return {
            "destination_service": self.host,
            "destination_service_name": self.name,
            "destination_service_namespace": self.namespace,
        }


def request_labels(
    *,
    reporter: str,
    source: Peer,
    destination: Peer,
    service: DestinationService,
    protocol: str,
    response_code: int,
    response_flags: str,
    mutual_tls: bool,
) -> dict[str, str]:
    labels = {"reporter": reporter, **source.labels("source"), **destination.labels("destination")}
    labels.update(service.labels())
    labels.update(
        request_protocol=protocol,
        response_code=str(response_code),
        grpc_response_status="",
        response_flags=response_flags or "-",
        connection_security_policy="mutual_tls" if mutual_tls else "none",
    )
    return labels


def tcp_labels(
    *,
    reporter: str,
    source: Peer,
    destination: Peer,
    service: DestinationService,
    response_flags: str,
    mutual_tls: bool,
) -> dict[str, str]:
    labels = {"reporter": reporter, **source.labels("source"), **destination.labels("destination")}
    labels.update(service.labels())
    labels.update(
        request_protocol="tcp",
        response_flags=response_flags or "-",
        connection_security_policy="mutual_tls" if mutual_tls else "none",
    )
    return labels


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(keys: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in zip(keys, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


class IstioMetrics:
    """The standard metrics one proxy has recorded, thread-safe."""

    COUNTERS = (
        ("istio_requests_total", "counter"),
        ("istio_tcp_sent_bytes_total", "counter"),
        ("istio_tcp_received_bytes_total", "counter"),
        ("istio_tcp_connections_opened_total", "counter"),
        ("istio_tcp_connections_closed_total", "counter"),
    )
    HISTOGRAMS = (
        ("istio_request_duration_milliseconds", DURATION_BUCKETS_MS),
        ("istio_request_bytes", SIZE_BUCKETS_BYTES),
        ("istio_response_bytes", SIZE_BUCKETS_BYTES),
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name, _ in self.COUNTERS}
        self._histograms: dict[str, dict[tuple[str, ...], _Histogram]] = {
            name: {} for name, _ in self.HISTOGRAMS
        }
        self._buckets = dict(self.HISTOGRAMS)

    def _add(self, name: str, keys: tuple[str, ...], labels: Mapping[str, str], amount: float) -> None:
        key = tuple(labels[k] for k in keys)
        series = self._counters[name]
        series[key] = series.get(key, 0.0) + amount

    def _observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        key = tuple(labels[k] for k in REQUEST_LABELS)
        series = self._histograms[name]
        if key not in series:
            series[key] = _Histogram(self._buckets[name])
        series[key].observe(value)

    def record_request(
        self, labels: Mapping[str, str], *, duration_ms: float, request_bytes: int, response_bytes: int
    ) -> None:
        with self._lock:
            self._add("istio_requests_total", REQUEST_LABELS, labels, 1)
            self._observe("istio_request_duration_milliseconds", labels, duration_ms)
            self._observe("istio_request_bytes", labels, request_bytes)
            self._observe("istio_response_bytes", labels, response_bytes)

    def tcp_opened(self, labels: Mapping[str, str]) -> None:
        with self._lock:
            self._add("istio_tcp_connections_opened_total", TCP_LABELS, labels, 1)

    def tcp_closed(self, labels: Mapping[str, str], *, sent: int, received: int) -> None:
        """``sent``/``received`` are bytes from the reporting proxy's point of view towards the
        downstream peer (Istio: sent = to the downstream, received = from it)."""
        with self._lock:
            self._add("istio_tcp_connections_closed_total", TCP_LABELS, labels, 1)
            self._add("istio_tcp_sent_bytes_total", TCP_LABELS, labels, sent)
            self._add("istio_tcp_received_bytes_total", TCP_LABELS, labels, received)

    def requests_total(self, **match: str) -> float:
        """Sum of ``istio_requests_total`` over series whose labels include ``match`` (for tests and
        for the proxy's own debug output)."""
        with self._lock:
            total = 0.0
            for key, value in self._counters["istio_requests_total"].items():
                labels = dict(zip(REQUEST_LABELS, key, strict=True))
                if all(labels.get(k) == v for k, v in match.items()):
                    total += value
            return total

    def render(self) -> str:
        """Prometheus text exposition (version 0.0.4), as Envoy's ``/stats/prometheus`` serves it."""
        lines: list[str] = []
        with self._lock:
            for name, kind in self.COUNTERS:
                series = self._counters[name]
                if not series:
                    continue
                keys = REQUEST_LABELS if name == "istio_requests_total" else TCP_LABELS
                lines.append(f"# TYPE {name} {kind}")
                for values, amount in sorted(series.items()):
                    lines.append(f"{name}{_format_labels(keys, values)} {int(amount)}")
            for name, _ in self.HISTOGRAMS:
                hist_series = self._histograms[name]
                if not hist_series:
                    continue
                lines.append(f"# TYPE {name} histogram")
                for values, hist in sorted(hist_series.items(), key=lambda item: item[0]):
                    for bound, count in zip(hist.buckets, hist.counts, strict=True):
                        le = f'le="{_format_bound(bound)}"'
                        lines.append(f"{name}_bucket{_format_labels(REQUEST_LABELS, values, le)} {count}")
                    inf = _format_labels(REQUEST_LABELS, values, 'le="+Inf"')
                    lines.append(f"{name}_bucket{inf} {hist.total}")
                    lines.append(f"{name}_sum{_format_labels(REQUEST_LABELS, values)} {hist.sum:g}")
                    lines.append(f"{name}_count{_format_labels(REQUEST_LABELS, values)} {hist.total}")
        return "\n".join(lines) + ("\n" if lines else "")
