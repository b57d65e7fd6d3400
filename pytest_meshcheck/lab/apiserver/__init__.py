"""The lab's Kubernetes API server: HTTPS, bearer-token auth, discovery, OpenAPI, CRUD, watch,
patch, subresources, pods/log, pods/exec over WebSocket, proxies and webhook admission, all as a
thin layer over ``lab.store.Store``."""

from __future__ import annotations

from pytest_meshcheck.lab.apiserver.runtime_api import PodRuntime, Writer
from pytest_meshcheck.lab.apiserver.server import ApiServer

__all__ = ["ApiServer", "PodRuntime", "Writer"]
