"""The part of Kiali's config.yaml the lab's Kiali honours, with Kiali's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = "/kiali-configuration/config.yaml"


@dataclass(frozen=True, kw_only=True)
class KialiConfig:
    web_root: str = "/"
    port: int = 20001
    #: Kiali's own /metrics listener (0 when disabled).
    metrics_port: int = 9090
    strategy: str = "token"
    istio_namespace: str = "istio-system"
    root_namespace: str = "istio-system"
    prometheus_url: str = "http://prometheus.istio-system:9090"
    cluster_name: str = "Kubernetes"

    @classmethod
    def parse(cls, text: str) -> KialiConfig:
        document: dict[str, Any] = yaml.safe_load(text) or {}
        server = document.get("server") or {}
        external = document.get("external_services") or {}
        istio_namespace = str(document.get("istio_namespace") or "istio-system")
        metrics = (server.get("observability") or {}).get("metrics") or {}
        web_root = "/" + str(server.get("web_root") or "/").strip("/")
        return cls(
            web_root=web_root.rstrip("/") if web_root != "/" else "",
            port=int(server.get("port") or 20001),
            metrics_port=int(metrics.get("port") or 9090) if metrics.get("enabled", True) else 0,
            strategy=str((document.get("auth") or {}).get("strategy") or "token"),
            istio_namespace=istio_namespace,
            root_namespace=str((external.get("istio") or {}).get("root_namespace") or istio_namespace),
            prometheus_url=str(
                (external.get("prometheus") or {}).get("url") or f"http://prometheus.{istio_namespace}:9090"
            ),
            cluster_name=str(((document.get("kubernetes_config") or {}).get("cluster_name")) or "Kubernetes"),
        )


def config_path(command: tuple[str, ...], args: tuple[str, ...]) -> str:
    """The ``-config`` argument of Kiali's command line, the image's default without one."""
    argv = [*command, *args]
    for index, arg in enumerate(argv):
        if arg in ("-config", "--config") and index + 1 < len(argv):
            return argv[index + 1]
        for prefix in ("-config=", "--config="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return DEFAULT_CONFIG_PATH
