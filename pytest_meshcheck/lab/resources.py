"""Which kinds the lab serves: the built-in Kubernetes resources plus those CRDs define.

Discovery, the OpenAPI documents, the store's storage keys and kubectl's short names all come from
this one registry, so a kind added here (or by applying a CRD) shows up everywhere at once. Objects
of one resource are stored once under ``(group, resource)`` whatever version wrote them; the lab does
not convert between versions, it only relabels ``apiVersion`` on the way out, which is all the
clients of the lab ever need (autoscaling v1/v2 HPAs, multi-version CRDs with the same schema).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_meshcheck.lab.errors import Invalid, NotFound


@dataclass(frozen=True, order=True)
class GVR:
    """A resource address: ``group`` ("" for core), ``version`` and plural ``resource``."""

    group: str
    version: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> GVR:
        """``"apps/v1/deployments"`` or ``"v1/pods"`` (core)."""
        parts = text.strip("/").split("/")
        if len(parts) == 2:
            return cls("", parts[0], parts[1])
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        raise ValueError(f"not a group/version/resource: {text!r}")

    @classmethod
    def core(cls, resource: str) -> GVR:
        return cls("", "v1", resource)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.group_version}/{self.resource}"


ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
CREATE_ONLY: tuple[str, ...] = ("create",)


@dataclass(frozen=True)
class ResourceKind:
    """One served resource of one group version, as discovery describes it."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    #: Name of the CRD that defines this kind, "" for built-ins.
    crd: str = ""
    #: For CRDs: the ``openAPIV3Schema`` of this version, used for strict field validation.
    schema: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: For CRDs with a scale subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    scale_paths: tuple[str, str, str] = ("", "", "")
    #: Extra printer columns of a CRD version (name, type, jsonPath).
    printer_columns: tuple[tuple[str, str, str], ...] = ()

    @property
    def gvr(self) -> GVR:
        return GVR(self.group, self.version, self.resource)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def storage_key(self) -> tuple[str, str]:
        return (self.group, self.resource)

    @property
    def qualified_resource(self) -> str:
        """``deployments.apps`` / ``pods``: how error messages name the resource."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


def _kinds(group: str, version: str, namespaced: bool, rows: Iterable[tuple[Any, ...]]) -> list[ResourceKind]:
    """Rows are ``(resource, kind, short_names, subresources[, verbs[, categories]])``."""
    kinds = []
    for row in rows:
        resource, kind, short, subs = row[0], row[1], row[2], row[3]
        verbs = row[4] if len(row) > 4 and row[4] else ALL_VERBS
        categories = row[5] if len(row) > 5 else ()
        kinds.append(
            ResourceKind(
                group=group,
                version=version,
                resource=resource,
                kind=kind,
                namespaced=namespaced,
                short_names=tuple(short),
                subresources=tuple(subs),
                verbs=tuple(verbs),
                categories=tuple(categories),
            )
        )
    return kinds


_ALL = ("all",)
_ST = ("status",)
_STSC = ("status", "scale")

BUILTIN_KINDS: tuple[ResourceKind, ...] = tuple(
    _kinds(
        "",
        "v1",
        True,
        [
            ("configmaps", "ConfigMap", ["cm"], []),
            ("endpoints", "Endpoints", ["ep"], []),
            ("events", "Event", ["ev"], []),
            ("limitranges", "LimitRange", ["limits"], []),
            ("persistentvolumeclaims", "PersistentVolumeClaim", ["pvc"], _ST),
            (
                "pods",
                "Pod",
                ["po"],
                ["status", "log", "exec", "proxy", "attach", "portforward", "eviction", "binding"],
                None,
                _ALL,
            ),
            ("podtemplates", "PodTemplate", [], []),
            ("replicationcontrollers", "ReplicationController", ["rc"], _STSC, None, _ALL),
            ("resourcequotas", "ResourceQuota", ["quota"], _ST),
            ("secrets", "Secret", [], []),
            ("serviceaccounts", "ServiceAccount", ["sa"], ["token"]),
            ("services", "Service", ["svc"], ["status", "proxy"], None, _ALL),
        ],
    )
    + _kinds(
        "",
        "v1",
        False,
        [
            ("namespaces", "Namespace", ["ns"], ["status", "finalize"]),
            ("nodes", "Node", ["no"], ["status", "proxy"]),
            ("persistentvolumes", "PersistentVolume", ["pv"], _ST),
        ],
    )
    + _kinds(
        "apps",
        "v1",
        True,
        [
            ("controllerrevisions", "ControllerRevision", [], []),
            ("daemonsets", "DaemonSet", ["ds"], _ST, None, _ALL),
            ("deployments", "Deployment", ["deploy"], _STSC, None, _ALL),
            ("replicasets", "ReplicaSet", ["rs"], _STSC, None, _ALL),
            ("statefulsets", "StatefulSet", ["sts"], _STSC, None, _ALL),
        ],
    )
    + _kinds(
        "batch",
        "v1",
        True,
        [("cronjobs", "CronJob", ["cj"], _ST, None, _ALL), ("jobs", "Job", [], _ST, None, _ALL)],
    )
    + _kinds(
        "autoscaling", "v2", True, [("horizontalpodautoscalers", "HorizontalPodAutoscaler", ["hpa"], _ST)]
    )
    + _kinds(
        "autoscaling", "v1", True, [("horizontalpodautoscalers", "HorizontalPodAutoscaler", ["hpa"], _ST)]
    )
    + _kinds("policy", "v1", True, [("poddisruptionbudgets", "PodDisruptionBudget", ["pdb"], _ST)])
    + _kinds(
        "networking.k8s.io",
        "v1",
        True,
        [
            ("ingresses", "Ingress", ["ing"], _ST),
            ("networkpolicies", "NetworkPolicy", ["netpol"], []),
        ],
    )
    + _kinds("networking.k8s.io", "v1", False, [("ingressclasses", "IngressClass", [], [])])
    + _kinds("discovery.k8s.io", "v1", True, [("endpointslices", "EndpointSlice", [], [])])
    + _kinds("events.k8s.io", "v1", True, [("events", "Event", ["ev"], [])])
    + _kinds("coordination.k8s.io", "v1", True, [("leases", "Lease", [], [])])
    + _kinds(
        "rbac.authorization.k8s.io",
        "v1",
        True,
        [("rolebindings", "RoleBinding", [], []), ("roles", "Role", [], [])],
    )
    + _kinds(
        "rbac.authorization.k8s.io",
        "v1",
        False,
        [("clusterrolebindings", "ClusterRoleBinding", [], []), ("clusterroles", "ClusterRole", [], [])],
    )
    + _kinds(
        "admissionregistration.k8s.io",
        "v1",
        False,
        [
            ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", [], []),
            ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", [], []),
            ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", [], _ST),
            ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", [], []),
        ],
    )
    + _kinds(
        "apiextensions.k8s.io",
        "v1",
        False,
        [("customresourcedefinitions", "CustomResourceDefinition", ["crd", "crds"], _ST)],
    )
    + _kinds(
        "storage.k8s.io",
        "v1",
        False,
        [
            ("csidrivers", "CSIDriver", [], []),
            ("csinodes", "CSINode", [], []),
            ("storageclasses", "StorageClass", ["sc"], []),
            ("volumeattachments", "VolumeAttachment", [], _ST),
        ],
    )
    + _kinds("scheduling.k8s.io", "v1", False, [("priorityclasses", "PriorityClass", ["pc"], [])])
    + _kinds("node.k8s.io", "v1", False, [("runtimeclasses", "RuntimeClass", [], [])])
    + _kinds(
        "certificates.k8s.io",
        "v1",
        False,
        [("certificatesigningrequests", "CertificateSigningRequest", ["csr"], ["status", "approval"])],
    )
    + _kinds("authentication.k8s.io", "v1", False, [("tokenreviews", "TokenReview", [], [], CREATE_ONLY)])
    + _kinds(
        "authorization.k8s.io",
        "v1",
        False,
        [
            ("selfsubjectaccessreviews", "SelfSubjectAccessReview", [], [], CREATE_ONLY),
            ("selfsubjectrulesreviews", "SelfSubjectRulesReview", [], [], CREATE_ONLY),
            ("subjectaccessreviews", "SubjectAccessReview", [], [], CREATE_ONLY),
        ],
    )
    + _kinds(
        "authorization.k8s.io",
        "v1",
        True,
        [("localsubjectaccessreviews", "LocalSubjectAccessReview", [], [], CREATE_ONLY)],
    )
)

#: Resources whose objects are never stored: the API answers a create with a computed status.
VIRTUAL_RESOURCES = frozenset(
    {
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "localsubjectaccessreviews"),
    }
)


class ResourceRegistry:
    """Thread-safe: CRDs come and go while requests are being served."""

    def __init__(self, builtins: Iterable[ResourceKind] = BUILTIN_KINDS) -> None:
        self._lock = threading.RLock()
        self._builtins = list(builtins)
        self._by_crd: dict[str, list[ResourceKind]] = {}

    def all(self) -> list[ResourceKind]:
        with self._lock:
            kinds = list(self._builtins)
            for crd_kinds in self._by_crd.values():
                kinds.extend(crd_kinds)
            return kinds

    def find(self, gvr: GVR) -> ResourceKind | None:
        for kind in self.all():
            if kind.group == gvr.group and kind.version == gvr.version and kind.resource == gvr.resource:
                return kind
        return None

    def get(self, gvr: GVR) -> ResourceKind:
        kind = self.find(gvr)
        if kind is None:
            raise NotFound(f"the server could not find the requested resource ({gvr})")
        return kind

    def any_version(self, group: str, resource: str) -> ResourceKind | None:
        """The first served version of ``group``'s ``resource``: for owner lookups and GC."""
        for kind in self.all():
            if kind.group == group and kind.resource == resource:
                return kind
        return None

    def for_kind(self, api_version: str, kind: str) -> ResourceKind | None:
        """Map an object's ``apiVersion``/``kind`` to its resource (what kubectl's RESTMapper does)."""
        group, _, version = api_version.rpartition("/")
        for candidate in self.all():
            if candidate.group == group and candidate.version == version and candidate.kind == kind:
                return candidate
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Groups in serving order, each with its versions, the preferred one first."""
        groups: dict[str, list[str]] = {}
        for kind in self.all():
            versions = groups.setdefault(kind.group, [])
            if kind.version not in versions:
                versions.append(kind.version)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceKind]:
        return [k for k in self.all() if k.group == group and k.version == version]

    def is_virtual(self, kind: ResourceKind) -> bool:
        return kind.storage_key in VIRTUAL_RESOURCES

    # -- CRDs ---------------------------------------------------------------------------------

    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceKind]:
        """Serve the versions a CRD declares; re-registering replaces the previous definition."""
        kinds = kinds_from_crd(crd)
        name = str(crd.get("metadata", {}).get("name", ""))
        with self._lock:
            self._by_crd[name] = kinds
        return kinds

    def unregister_crd(self, name: str) -> list[ResourceKind]:
        with self._lock:
            return self._by_crd.pop(name, [])

    def crd_kinds(self, name: str) -> list[ResourceKind]:
        with self._lock:
            return list(self._by_crd.get(name, []))


def validate_crd(crd: Mapping[str, Any]) -> list[dict[str, str]]:
    """The checks the real apiextensions server makes that matter to clients; returns causes."""
    causes: list[dict[str, str]] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    if not group:
        causes.append({"field": "spec.group", "message": "Required value"})
    if not plural:
        causes.append({"field": "spec.names.plural", "message": "Required value"})
    if not names.get("kind"):
        causes.append({"field": "spec.names.kind", "message": "Required value"})
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            {"field": "spec.scope", "message": 'Unsupported value: must be "Namespaced" or "Cluster"'}
        )
    name = (crd.get("metadata") or {}).get("name", "")
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            {
                "field": "metadata.name",
                "message": f'must be spec.names.plural+"."+spec.group: "{plural}.{group}"',
            }
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            {
                "field": "spec.versions",
                "message": "Required value: must have exactly one version marked as storage version",
            }
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            {
                "field": "spec.versions",
                "message": "Invalid value: must have exactly one version marked as storage version",
            }
        )
    return causes


def kinds_from_crd(crd: Mapping[str, Any]) -> list[ResourceKind]:
    causes = validate_crd(crd)
    name = str((crd.get("metadata") or {}).get("name", ""))
    if causes:
        raise Invalid(f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid', causes=causes)
    spec = crd["spec"]
    names = spec["names"]
    kinds = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources_spec = version.get("subresources") or spec.get("subresources") or {}
        subresources = tuple(s for s in ("status", "scale") if s in subresources_spec)
        scale = subresources_spec.get("scale") or {}
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema") or {}
        columns = tuple(
            (str(c.get("name", "")), str(c.get("type", "string")), str(c.get("jsonPath", "")))
            for c in version.get("additionalPrinterColumns") or []
        )
        kinds.append(
            ResourceKind(
                group=spec["group"],
                version=version["name"],
                resource=names["plural"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=subresources,
                categories=tuple(names.get("categories") or ()),
                crd=name,
                schema=schema,
                scale_paths=(
                    str(scale.get("specReplicasPath", "")),
                    str(scale.get("statusReplicasPath", "")),
                    str(scale.get("labelSelectorPath", "")),
                ),
                printer_columns=columns,
            )
        )
    return kinds
