"""Discovery documents: ``/version``, ``/api``, ``/apis`` and the per group-version resource lists.

Both the legacy documents and aggregated discovery (``apidiscovery.k8s.io/v2``, one document for
``/api`` and one for ``/apis``) are served; kubectl 1.32 asks for the aggregated form first, which
saves it a request per group version on every cold start.
"""

from __future__ import annotations

from typing import Any

from pytest_meshcheck.lab.resources import ResourceKind, ResourceRegistry

KUBERNETES_VERSION = "v1.32.0"

#: Discovery shape of each subresource: (verbs, kind, group, version).
_SUBRESOURCES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "status": (("get", "patch", "update"), "", "", ""),
    "scale": (("get", "patch", "update"), "Scale", "autoscaling", "v1"),
    "log": (("get",), "Pod", "", ""),
    "exec": (("create", "get"), "PodExecOptions", "", ""),
    "attach": (("create", "get"), "PodAttachOptions", "", ""),
    "portforward": (("create", "get"), "PodPortForwardOptions", "", ""),
    "proxy": (("create", "delete", "get", "patch", "update"), "", "", ""),
    "eviction": (("create",), "Eviction", "policy", "v1"),
    "binding": (("create",), "Binding", "", ""),
    "finalize": (("update",), "Namespace", "", ""),
    "token": (("create",), "TokenRequest", "authentication.k8s.io", "v1"),
    "approval": (("get", "patch", "update"), "", "", ""),
}

_PROXY_KINDS = {"pods": "PodProxyOptions", "services": "ServiceProxyOptions", "nodes": "NodeProxyOptions"}


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = [_group(name, versions) for name, versions in registry.group_versions().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: ResourceRegistry, name: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _resource_entry(kind: ResourceKind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    return entry


def _subresource_entry(kind: ResourceKind, sub: str) -> dict[str, Any]:
    verbs, sub_kind, sub_group, sub_version = _SUBRESOURCES.get(sub, (("get",), "", "", ""))
    if sub == "proxy":
        sub_kind = _PROXY_KINDS.get(kind.resource, "")
    entry: dict[str, Any] = {
        "name": f"{kind.resource}/{sub}",
        "singularName": "",
        "namespaced": kind.namespaced,
        "kind": sub_kind or kind.kind,
        "verbs": list(verbs),
    }
    if sub_group:
        entry["group"] = sub_group
    if sub_version:
        entry["version"] = sub_version
    return entry


def resource_list(registry: ResourceRegistry, group_name: str, version: str) -> dict[str, Any] | None:
    kinds = registry.in_group_version(group_name, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for kind in kinds:
        resources.append(_resource_entry(kind))
        resources.extend(_subresource_entry(kind, sub) for sub in kind.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group_name}/{version}" if group_name else version,
        "resources": resources,
    }


AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def aggregated_media_type(accept: str) -> str | None:
    """The aggregated discovery type the client asked for first, if any (kubectl asks for v2,
    then v2beta1, then plain JSON)."""
    for offered in accept.split(","):
        normalized = offered.replace(" ", "")
        if "as=APIGroupDiscoveryList" in normalized and "g=apidiscovery.k8s.io" in normalized:
            if "v=v2beta1" in normalized:
                return AGGREGATED_V2BETA1
            if "v=v2" in normalized:
                return AGGREGATED_V2
    return None


def _aggregated_resource(kind: ResourceKind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": kind.resource,
        "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "singularResource": kind.singular,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    subresources = []
    for sub in kind.subresources:
        legacy = _subresource_entry(kind, sub)
        subresources.append(
            {
                "subresource": sub,
                "responseKind": {
                    "group": legacy.get("group", kind.group),
                    "version": legacy.get("version", kind.version),
                    "kind": legacy["kind"],
                },
                "verbs": legacy["verbs"],
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(registry: ResourceRegistry, *, core: bool, media_type: str) -> dict[str, Any]:
    """``/api`` (core only) or ``/apis`` (every named group) as one APIGroupDiscoveryList."""
    items = []
    for name, versions in registry.group_versions().items():
        if (name == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": name, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _aggregated_resource(k) for k in registry.in_group_version(name, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    api_version = (
        "apidiscovery.k8s.io/v2beta1" if media_type == AGGREGATED_V2BETA1 else "apidiscovery.k8s.io/v2"
    )
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}
