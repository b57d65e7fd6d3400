"""A small Kiali REST API client, through the API server's service proxy (anonymous or token auth)."""

from __future__ import annotations

import json
from typing import Any

from pytest_meshcheck.errors import EnvironmentProblem
from pytest_meshcheck.kube.client import Kube
from pytest_meshcheck.kube.proxy import service_request


class KialiClient:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str = "istio-system",
        service: str = "kiali",
        port: int = 20001,
        web_root: str = "/kiali",
        token: str = "",
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.port = port
        self.web_root = web_root.rstrip("/")
        self.token = token

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = service_request(
            self.kube,
            self.namespace,
            self.service,
            self.port,
            f"{self.web_root}/api/{path.lstrip('/')}",
            params=params,
            headers=headers,
        )
        if response.status != 200:
            raise EnvironmentProblem(
                f"Kiali answered {response.status} to {path}",
                evidence={"kiali response": response.text()[:4000]},
            )
        return json.loads(response.body)

    def graph(
        self,
        namespaces: list[str],
        *,
        graph_type: str = "versionedApp",
        duration: str = "60s",
        appenders: str = "deadNode,securityPolicy,responseTime,throughput",
    ) -> dict[str, Any]:
        """Kiali's Cytoscape JSON graph for ``namespaces``."""
        result: dict[str, Any] = self.get(
            "namespaces/graph",
            {
                "namespaces": ",".join(namespaces),
                "graphType": graph_type,
                "duration": duration,
                "appenders": appenders,
                "injectServiceNodes": "false",
            },
        )
        return result

    def mesh_tls(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("mesh/tls")
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("")
        return result
