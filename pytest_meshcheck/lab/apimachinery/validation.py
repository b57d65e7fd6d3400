"""Name and object validation: the checks whose failures clients are built to show (422 Invalid
with field causes), plus strict field validation of the envelope every object shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: Resources whose names must be DNS-1123 labels rather than subdomains.
LABEL_NAMED = frozenset({("", "namespaces"), ("", "services")})
#: ... and of those, the ones that must also start with a letter (RFC 1035).
DNS1035_NAMED = frozenset({("", "services")})
#: Resources whose names are free-form path segments (RBAC allows "system:..." names).
PATH_SEGMENT_NAMED = frozenset(
    {
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("", "nodes"),
    }
)

KNOWN_METADATA_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def name_problems(name: str, storage_key: tuple[str, str]) -> list[str]:
    if storage_key in PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return ['may not contain "/" or "%" and may not be "." or ".."']
        return []
    if storage_key in LABEL_NAMED:
        if len(name) > 63:
            return ["must be no more than 63 characters"]
        if storage_key in DNS1035_NAMED and not _DNS1035_LABEL.match(name):
            return [
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        if not _DNS1123_LABEL.match(name):
            return [
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        return []
    if len(name) > 253:
        return ["must be no more than 253 characters"]
    if not _DNS1123_SUBDOMAIN.match(name):
        return [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    return []


def _label_key_problems(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        problems.append("prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        problems.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character"
        )
    return problems


def metadata_causes(obj: Mapping[str, Any], storage_key: tuple[str, str]) -> list[dict[str, str]]:
    """Field causes for an object's metadata; empty when valid."""
    causes: list[dict[str, str]] = []
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return [{"field": "metadata", "message": "Required value", "reason": "FieldValueRequired"}]
    name = metadata.get("name")
    if not name:
        causes.append(
            {
                "field": "metadata.name",
                "message": "Required value: name or generateName is required",
                "reason": "FieldValueRequired",
            }
        )
    elif not isinstance(name, str):
        causes.append(
            {
                "field": "metadata.name",
                "message": "Invalid value: must be a string",
                "reason": "FieldValueInvalid",
            }
        )
    else:
        for problem in name_problems(name, storage_key):
            causes.append(
                {
                    "field": "metadata.name",
                    "message": f'Invalid value: "{name}": {problem}',
                    "reason": "FieldValueInvalid",
                }
            )
    labels = metadata.get("labels") or {}
    if not isinstance(labels, Mapping):
        causes.append(
            {
                "field": "metadata.labels",
                "message": "Invalid value: must be a map",
                "reason": "FieldValueInvalid",
            }
        )
    else:
        for key, value in labels.items():
            for problem in _label_key_problems(str(key)):
                causes.append(
                    {
                        "field": "metadata.labels",
                        "message": f'Invalid value: "{key}": {problem}',
                        "reason": "FieldValueInvalid",
                    }
                )
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                causes.append(
                    {
                        "field": "metadata.labels",
                        "message": f'Invalid value: "{value}": a valid label must be an empty string or '
                        "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                        "with an alphanumeric character",
                        "reason": "FieldValueInvalid",
                    }
                )
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, Mapping) or not all(isinstance(v, str) for v in annotations.values()):
        causes.append(
            {
                "field": "metadata.annotations",
                "message": "Invalid value: values must be strings",
                "reason": "FieldValueInvalid",
            }
        )
    return causes


#: Top-level fields per kind beyond apiVersion/kind/metadata, for strict field validation of
#: built-ins; kinds not listed accept ``spec`` and ``status`` (plus whatever a CRD schema allows).
TOP_LEVEL_FIELDS: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"data", "binaryData", "immutable"}),
    "Secret": frozenset({"data", "stringData", "type", "immutable"}),
    "ServiceAccount": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "Endpoints": frozenset({"subsets"}),
    "EndpointSlice": frozenset({"addressType", "endpoints", "ports"}),
    "Role": frozenset({"rules"}),
    "ClusterRole": frozenset({"rules", "aggregationRule"}),
    "RoleBinding": frozenset({"subjects", "roleRef"}),
    "ClusterRoleBinding": frozenset({"subjects", "roleRef"}),
    "MutatingWebhookConfiguration": frozenset({"webhooks"}),
    "ValidatingWebhookConfiguration": frozenset({"webhooks"}),
    "Event": frozenset(
        {
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
            "regarding",
            "note",
            "reportingController",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        }
    ),
    "StorageClass": frozenset(
        {
            "provisioner",
            "parameters",
            "reclaimPolicy",
            "mountOptions",
            "allowVolumeExpansion",
            "volumeBindingMode",
            "allowedTopologies",
        }
    ),
    "PriorityClass": frozenset({"value", "globalDefault", "description", "preemptionPolicy"}),
    "RuntimeClass": frozenset({"handler", "overhead", "scheduling"}),
    "ControllerRevision": frozenset({"data", "revision"}),
}

#: Fields a few well-known specs may hold, checked one level down under strict validation.
SPEC_FIELDS: dict[str, frozenset[str]] = {
    "Deployment": frozenset(
        {
            "replicas",
            "selector",
            "template",
            "strategy",
            "minReadySeconds",
            "revisionHistoryLimit",
            "paused",
            "progressDeadlineSeconds",
        }
    ),
    "Service": frozenset(
        {
            "ports",
            "selector",
            "clusterIP",
            "clusterIPs",
            "type",
            "externalIPs",
            "sessionAffinity",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalName",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "publishNotReadyAddresses",
            "sessionAffinityConfig",
            "ipFamilies",
            "ipFamilyPolicy",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "internalTrafficPolicy",
            "trafficDistribution",
        }
    ),
}


def unknown_field_causes(obj: Mapping[str, Any], kind: str, *, is_crd: bool) -> list[str]:
    """Paths of fields the lab knows are not part of ``kind`` (``.spec.replicaz``)."""
    unknown = []
    allowed = TOP_LEVEL_FIELDS.get(kind, frozenset({"spec", "status"}))
    if not is_crd:
        for key in obj:
            if key not in ("apiVersion", "kind", "metadata") and key not in allowed:
                unknown.append(f".{key}")
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        unknown.extend(f".metadata.{key}" for key in metadata if key not in KNOWN_METADATA_FIELDS)
    spec = obj.get("spec")
    if kind in SPEC_FIELDS and isinstance(spec, Mapping):
        unknown.extend(f".spec.{key}" for key in spec if key not in SPEC_FIELDS[kind])
    return unknown


def schema_unknown_fields(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Unknown fields of a custom resource against its CRD's structural schema."""
    if not isinstance(value, Mapping) or not schema:
        return []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    unknown = []
    for key, child in value.items():
        if path == "" and key in ("apiVersion", "kind", "metadata"):
            continue
        if properties is not None and key in properties:
            unknown.extend(schema_unknown_fields(child, properties[key], f"{path}.{key}"))
        elif isinstance(additional, Mapping):
            unknown.extend(schema_unknown_fields(child, additional, f"{path}.{key}"))
        elif properties is not None and additional is not True:
            unknown.append(f"{path}.{key}")
    return unknown


_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})


def _container_causes(pod_spec: Any, prefix: str) -> list[dict[str, str]]:
    if not isinstance(pod_spec, Mapping):
        return [{"field": prefix, "message": "Required value", "reason": "FieldValueRequired"}]
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [
            {"field": f"{prefix}.containers", "message": "Required value", "reason": "FieldValueRequired"}
        ]
    causes = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        field = f"{prefix}.containers[{index}]"
        if not isinstance(container, Mapping):
            causes.append(
                {"field": field, "message": "Invalid value: must be an object", "reason": "FieldValueInvalid"}
            )
            continue
        name = container.get("name")
        if not name:
            causes.append(
                {"field": f"{field}.name", "message": "Required value", "reason": "FieldValueRequired"}
            )
        elif name in seen:
            causes.append(
                {
                    "field": f"{field}.name",
                    "message": f'Duplicate value: "{name}"',
                    "reason": "FieldValueDuplicate",
                }
            )
        else:
            seen.add(str(name))
        if not container.get("image"):
            causes.append(
                {"field": f"{field}.image", "message": "Required value", "reason": "FieldValueRequired"}
            )
    return causes


def kind_causes(obj: Mapping[str, Any], kind: str) -> list[dict[str, str]]:
    """The per-kind checks whose 422s people meet when a manifest is wrong."""
    spec = obj.get("spec")
    causes: list[dict[str, str]] = []
    if kind == "Pod":
        causes += _container_causes(spec, "spec")
    elif kind in _WORKLOADS:
        spec = spec if isinstance(spec, Mapping) else {}
        selector = spec.get("selector")
        raw_template = spec.get("template")
        template: Mapping[str, Any] = raw_template if isinstance(raw_template, Mapping) else {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not isinstance(selector, Mapping) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            causes.append(
                {"field": "spec.selector", "message": "Required value", "reason": "FieldValueRequired"}
            )
        else:
            from pytest_meshcheck.lab.apimachinery.selectors import match_label_selector

            if not match_label_selector(selector, labels):
                causes.append(
                    {
                        "field": "spec.template.metadata.labels",
                        "message": f"Invalid value: {labels!r}: `selector` does not match template `labels`",
                        "reason": "FieldValueInvalid",
                    }
                )
        causes += _container_causes(template.get("spec"), "spec.template.spec")
    elif kind == "Service" and isinstance(spec, Mapping):
        for index, port in enumerate(spec.get("ports") or []):
            if (
                not isinstance(port, Mapping)
                or not isinstance(port.get("port"), int)
                or not 0 < port["port"] < 65536
            ):
                causes.append(
                    {
                        "field": f"spec.ports[{index}].port",
                        "message": "Invalid value: must be between 1 and 65535, inclusive",
                        "reason": "FieldValueInvalid",
                    }
                )
    return causes


#: Fields that cannot change after creation, per kind (dotted paths).
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "ReplicaSet": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName"),
    "DaemonSet": ("spec.selector",),
    "Job": ("spec.selector",),
}


def immutable_causes(old: Mapping[str, Any], new: Mapping[str, Any], kind: str) -> list[dict[str, str]]:
    causes = []
    for path in IMMUTABLE_FIELDS.get(kind, ()):
        before: Any = old
        after: Any = new
        for part in path.split("."):
            before = before.get(part) if isinstance(before, Mapping) else None
            after = after.get(part) if isinstance(after, Mapping) else None
        if before != after:
            causes.append(
                {"field": path, "message": "Invalid value: field is immutable", "reason": "FieldValueInvalid"}
            )
    return causes
