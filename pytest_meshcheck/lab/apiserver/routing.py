"""URL grammar of the Kubernetes REST API, parsed into a ``ResourceTarget``.

``/api/v1[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}[/{rest...}]]]`` and the same
under ``/apis/{group}/{version}``. ``/api/v1/namespaces/{name}`` is the namespace itself, and
``/api/v1/namespaces/{name}/status|finalize`` its subresources.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from pytest_meshcheck.lab.resources import GVR


@dataclass(frozen=True)
class ResourceTarget:
    group: str
    version: str
    namespace: str | None
    resource: str
    name: str | None
    subresource: str | None
    #: For proxies: the path after ``/proxy`` (with its leading slash, "" when none).
    rest: str
    watch_prefix: bool = False

    @property
    def gvr(self) -> GVR:
        return GVR(self.group, self.version, self.resource)


def parse_resource_path(path: str) -> ResourceTarget | None:
    trailing_slash = path.endswith("/") and len(path) > 1
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch_prefix = False
    if rest and rest[0] == "watch":
        watch_prefix, rest = True, rest[1:]
    namespace = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    if not rest or not rest[0]:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    tail = ""
    if len(rest) > 3:
        tail = "/" + "/".join(rest[3:])
    if subresource == "proxy" and trailing_slash:
        tail += "/"
    return ResourceTarget(group, version, namespace, rest[0], name, subresource, tail, watch_prefix)
