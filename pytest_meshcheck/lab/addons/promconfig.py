"""The addon's prometheus.yml, translated for the lab before the real server reads it.

Two things a pod on a real node gets that the lab's Prometheus process does not:
- Kubernetes discovery: each ``kubernetes_sd_configs`` entry becomes an ``http_sd_configs`` entry
  pointing at the workload's own discovery endpoint (``sdserver``), which serves the same targets
  and ``__meta_kubernetes_*`` labels from the lab's API objects. Relabel rules stay untouched.
- A private ``localhost``: the process shares the host's loopback, so static targets on
  ``localhost``/``127.0.0.1`` (Prometheus scraping itself) are pointed at the pod's address.
Everything else in the file is passed through as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

ROLES = ("pod", "service", "endpoints", "node")
_LOCAL_HOSTS = ("localhost", "127.0.0.1")


class UnsupportedDiscovery(ValueError):
    """A ``kubernetes_sd_configs`` entry the lab cannot serve (an unknown role)."""


@dataclass(frozen=True, kw_only=True)
class SdSpec:
    """One ``kubernetes_sd_configs`` entry: what to list."""

    role: str
    #: Namespaces to list; empty means all.
    namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""


@dataclass(frozen=True, kw_only=True)
class TranslatedConfig:
    text: str
    #: Index ``n`` is served at ``/sd/n`` by the discovery endpoint.
    discoveries: tuple[SdSpec, ...]


def _sd_spec(entry: Mapping[str, Any], own_namespace: str) -> SdSpec:
    role = str(entry.get("role", ""))
    if role not in ROLES:
        raise UnsupportedDiscovery(
            f"kubernetes_sd_configs role {role!r} is not supported here (supported: {', '.join(ROLES)})"
        )
    selection = entry.get("namespaces") or {}
    names = [str(name) for name in selection.get("names") or []]
    if selection.get("own_namespace"):
        names.append(own_namespace)
    labels: list[str] = []
    fields: list[str] = []
    for selector in entry.get("selectors") or []:
        if selector.get("role") not in (None, role):
            continue
        if selector.get("label"):
            labels.append(str(selector["label"]))
        if selector.get("field"):
            fields.append(str(selector["field"]))
    return SdSpec(
        role=role,
        namespaces=tuple(dict.fromkeys(names)),
        label_selector=",".join(labels),
        field_selector=",".join(fields),
    )


def _local_target(target: str, pod_ip: str) -> str:
    host, sep, port = target.rpartition(":")
    if sep and host in _LOCAL_HOSTS:
        return f"{pod_ip}:{port}"
    if not sep and target in _LOCAL_HOSTS:
        return pod_ip
    return target


def translate(
    text: str, *, sd_base_url: str, pod_ip: str, own_namespace: str, refresh_interval: str = "2s"
) -> TranslatedConfig:
    """``text`` is the addon's prometheus.yml; ``sd_base_url`` is where ``/sd/<n>`` is served."""
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise ValueError("prometheus.yml is not a mapping")
    discoveries: list[SdSpec] = []
    for job in document.get("scrape_configs") or []:
        kube = job.pop("kubernetes_sd_configs", None) or []
        http_sd = list(job.get("http_sd_configs") or [])
        for entry in kube:
            discoveries.append(_sd_spec(entry, own_namespace))
            http_sd.append(
                {"url": f"{sd_base_url}/sd/{len(discoveries) - 1}", "refresh_interval": refresh_interval}
            )
        if http_sd:
            job["http_sd_configs"] = http_sd
        for static in job.get("static_configs") or []:
            static["targets"] = [_local_target(str(t), pod_ip) for t in static.get("targets") or []]
    return TranslatedConfig(text=yaml.safe_dump(document, sort_keys=False), discoveries=tuple(discoveries))
