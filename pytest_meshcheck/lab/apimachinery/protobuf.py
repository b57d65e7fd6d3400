"""Kubernetes' protobuf schema: decoding protobuf request bodies into the JSON objects the store
holds, and knowing every field of every built-in kind (for strict field validation).

kubectl's typed clients (``kubectl create namespace``, ``create configmap``, ``create token``,
``auth can-i`` ...) send ``application/vnd.kubernetes.protobuf`` bodies and do not retry with
JSON. A body is the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` envelope naming the
apiVersion and kind, whose ``raw`` field is the object in the wire format of Kubernetes'
``generated.proto`` messages. Field numbers and names come from those files, compiled into
``k8s_proto_schema.json`` by ``python -m pytest_meshcheck.lab.apimachinery.protobuf <proto files>``.

The Go types behind these messages treat zero values as absent, so empty strings and empty
messages are dropped, as JSON's ``omitempty`` would; numbers and booleans are kept.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_meshcheck.lab.errors import BadRequest, UnsupportedMediaType

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
SCHEMA_PATH = Path(__file__).with_name("k8s_proto_schema.json")
_SCALARS = {
    "string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "double", "float",
    "fixed32", "fixed64", "sfixed32", "sfixed64",
}  # fmt: skip
#: Fields that are pointers in the Go types, so 0 or false is a value the client chose (everything
#: else treats zero as unset, and a real server would not show it).
MEANINGFUL_ZEROS = frozenset(
    {
        "replicas", "parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "suspend",
        "terminationGracePeriodSeconds", "automountServiceAccountToken", "readOnlyRootFilesystem",
        "runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "privileged", "allowPrivilegeEscalation",
        "immutable", "ttlSecondsAfterFinished", "revisionHistoryLimit", "progressDeadlineSeconds",
        "optional", "enableServiceLinks", "shareProcessNamespace", "hostUsers", "setHostnameAsFQDN",
        "allocateLoadBalancerNodePorts", "expirationSeconds", "defaultMode", "mode", "minAvailable",
        "maxUnavailable", "value", "globalDefault", "allowed", "denied", "authenticated", "readOnly",
        "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds", "priority",
        "minReplicas", "maxReplicas", "weight", "initialDelaySeconds", "failureThreshold",
    }
)  # fmt: skip

Field = tuple[str, str, bool]  # name, type, repeated


@functools.cache
def _schema() -> dict[str, dict[int, Field]]:
    raw = json.loads(SCHEMA_PATH.read_text())
    return {
        message: {int(number): (name, type_, bool(repeated)) for number, name, type_, repeated in fields}
        for message, fields in raw["messages"].items()
    }


_CORE = "k8s.io.api.core.v1"
#: Embedded Go structs (``json:",inline"``): in JSON their fields sit in the parent object.
INLINE_FIELDS = frozenset(
    {
        (f"{_CORE}.Volume", "volumeSource"),
        (f"{_CORE}.PersistentVolumeSpec", "persistentVolumeSource"),
        (f"{_CORE}.ConfigMapEnvSource", "localObjectReference"),
        (f"{_CORE}.ConfigMapKeySelector", "localObjectReference"),
        (f"{_CORE}.ConfigMapProjection", "localObjectReference"),
        (f"{_CORE}.ConfigMapVolumeSource", "localObjectReference"),
        (f"{_CORE}.SecretEnvSource", "localObjectReference"),
        (f"{_CORE}.SecretKeySelector", "localObjectReference"),
        (f"{_CORE}.SecretProjection", "localObjectReference"),
        (f"{_CORE}.EphemeralContainer", "ephemeralContainerCommon"),
        (f"{_CORE}.Probe", "handler"),
        (f"{_CORE}.VolumeMountStatus", "volumeStatus"),
        ("k8s.io.api.networking.v1.IngressRule", "ingressRuleValue"),
        ("k8s.io.api.admissionregistration.v1.RuleWithOperations", "rule"),
        ("k8s.io.api.admissionregistration.v1.NamedRuleWithOperations", "ruleWithOperations"),
    }
)


@functools.cache
def fields_by_name(message: str) -> dict[str, tuple[str, bool]] | None:
    """JSON field name -> (type, repeated) of a message, None for messages the lab does not know.
    go-to-protobuf names proto fields after the JSON tags (a few start upper-case, and embedded
    structs are inlined), so this maps to the JSON names."""
    fields = _schema().get(message)
    if fields is None:
        return None
    by_name: dict[str, tuple[str, bool]] = {}
    for name, type_, repeated in fields.values():
        if (message, name) in INLINE_FIELDS:
            by_name.update(fields_by_name(type_) or {})
            continue
        by_name[name[:1].lower() + name[1:]] = (type_, repeated)
    return by_name


#: Messages whose JSON form is free-form or scalar: nothing below them is checked.
OPAQUE_MESSAGES = frozenset(
    {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "k8s.io.apimachinery.pkg.api.resource.Quantity",
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
        "k8s.io.apimachinery.pkg.runtime.RawExtension",
        "k8s.io.apimachinery.pkg.runtime.Unknown",
    }
)


def unknown_fields(value: Any, message: str, path: str = "") -> list[str]:
    """Paths (``.spec.template.spec.containers[0].imagePullPolicyy``) of fields in ``value``
    that the message does not have. Patch directives (``$patch`` ...) are not fields."""
    if message in OPAQUE_MESSAGES or not isinstance(value, dict):
        return []
    fields = fields_by_name(message)
    if fields is None:
        return []
    unknown = []
    for key, child in value.items():
        if key.startswith("$") or (not path and key in ("apiVersion", "kind")):
            continue
        field = fields.get(key)
        if field is None:
            unknown.append(f"{path}.{key}")
            continue
        type_, repeated = field
        if type_.startswith("map<"):
            value_type = type_[4:-1].split(",", 1)[1]
            if value_type not in _SCALARS and isinstance(child, dict):
                for map_key, item in child.items():
                    unknown += unknown_fields(item, value_type, f"{path}.{key}[{map_key}]")
        elif type_ not in _SCALARS:
            if repeated and isinstance(child, list):
                for index, item in enumerate(child):
                    unknown += unknown_fields(item, type_, f"{path}.{key}[{index}]")
            else:
                unknown += unknown_fields(child, type_, f"{path}.{key}")
    return unknown


def _group_package(api_version: str) -> str:
    group = api_version.rpartition("/")[0]
    return "core" if not group else group.split(".")[0]


_META_PACKAGE = "k8s.io.apimachinery.pkg.apis.meta.v1"


def message_for(api_version: str, kind: str) -> str:
    """The protobuf message of a kind: ``k8s.io.api.<group>.<version>.<Kind>``, or the meta/v1
    message for option types (``DeleteOptions`` ...) that clients send as ``meta.k8s.io/v1``."""
    version = api_version.rpartition("/")[2]
    group = api_version.rpartition("/")[0]
    candidate = f"k8s.io.api.{_group_package(api_version)}.{version}.{kind}"
    if group == "meta.k8s.io" or candidate not in _schema():
        meta = f"{_META_PACKAGE}.{kind}"
        if meta in _schema():
            return meta
    return candidate


# -- wire format ---------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint starting at ``pos``; returns (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("malformed protobuf: truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise BadRequest("malformed protobuf: varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) triples of one message."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise BadRequest("malformed protobuf: truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise BadRequest(f"malformed protobuf: unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = ((value + (1 << 31)) % (1 << 32)) - (1 << 31)
    return value


def _scalar(type_: str, wire: int, value: Any) -> Any:
    if type_ == "string":
        return bytes(value).decode("utf-8", errors="replace")
    if type_ == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if type_ == "bool":
        return bool(value)
    if type_ in ("int32", "int64"):
        return _signed(int(value), 32 if type_ == "int32" else 64)
    if type_ in ("uint32", "uint64"):
        return int(value)
    if type_ in ("sint32", "sint64"):
        return (int(value) >> 1) ^ -(int(value) & 1)
    if type_ == "double":
        return struct.unpack("<d", value)[0]
    if type_ == "float":
        return struct.unpack("<f", value)[0]
    if type_ in ("fixed32", "sfixed32"):
        return struct.unpack("<I" if type_ == "fixed32" else "<i", value)[0]
    return struct.unpack("<Q" if type_ == "fixed64" else "<q", value)[0]


def _packed(type_: str, data: bytes) -> list[Any]:
    values = []
    pos = 0
    while pos < len(data):
        if type_ in ("double", "fixed64", "sfixed64"):
            values.append(_scalar(type_, 1, data[pos : pos + 8]))
            pos += 8
        elif type_ in ("float", "fixed32", "sfixed32"):
            values.append(_scalar(type_, 5, data[pos : pos + 4]))
            pos += 4
        else:
            raw, pos = _varint(data, pos)
            values.append(_scalar(type_, 0, raw))
    return values


_TIME_MESSAGES = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
}


def _special(message: str, data: bytes) -> tuple[bool, Any]:
    """Messages whose JSON form is not an object."""
    if message in _TIME_MESSAGES:
        parts = {n: v for n, _w, v in _fields(data)}
        seconds = _signed(int(parts.get(1, 0)), 64)
        nanos = int(parts.get(2, 0))
        if not seconds and not nanos:
            return True, None
        stamp = datetime.fromtimestamp(seconds, UTC)
        if message.endswith("MicroTime"):
            return True, stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
        return True, stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if message == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        parts = {n: v for n, _w, v in _fields(data)}
        return True, bytes(parts.get(1, b"")).decode() or None
    if message == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        parts = {n: v for n, _w, v in _fields(data)}
        if int(parts.get(1, 0)) == 1:
            return True, bytes(parts.get(3, b"")).decode()
        return True, _signed(int(parts.get(2, 0)), 32)
    if message in (
        "k8s.io.apimachinery.pkg.runtime.RawExtension",
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
    ):
        parts = {n: v for n, _w, v in _fields(data)}
        raw = bytes(parts.get(1, b""))
        try:
            return True, json.loads(raw) if raw else None
        except ValueError as exc:
            raise BadRequest(f"malformed embedded JSON in protobuf: {exc}") from exc
    if message == "k8s.io.apimachinery.pkg.apis.meta.v1.Duration":
        parts = {n: v for n, _w, v in _fields(data)}
        nanoseconds = _signed(int(parts.get(1, 0)), 64)
        return True, f"{nanoseconds / 1e9:g}s"
    return False, None


def decode_message(message: str, data: bytes) -> Any:
    special, value = _special(message, data)
    if special:
        return value
    fields = _schema().get(message)
    if fields is None:
        raise UnsupportedMediaType(f"the lab cannot decode protobuf message {message}; send JSON instead")
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        field = fields.get(number)
        if field is None:
            continue
        name, type_, repeated = field
        if type_.startswith("map<"):
            key_type, value_type = type_[4:-1].split(",", 1)
            entry = {n: (w, v) for n, w, v in _fields(bytes(raw))}
            key = _decode_value(key_type, *entry[1]) if 1 in entry else ""
            value = _decode_value(value_type, *entry[2]) if 2 in entry else _zero(value_type)
            out.setdefault(name, {})[str(key)] = value
            continue
        if repeated and wire == 2 and type_ in _SCALARS and type_ not in ("string", "bytes"):
            out.setdefault(name, []).extend(_packed(type_, bytes(raw)))
            continue
        value = _decode_value(type_, wire, raw)
        if repeated:
            out.setdefault(name, []).append(value)
        elif not _empty(value) and (
            value not in (0, False) or isinstance(value, float) or name in MEANINGFUL_ZEROS
        ):
            out[name] = value
    return out


def _zero(type_: str) -> Any:
    if type_ in ("string", "bytes"):
        return ""
    if type_ == "bool":
        return False
    if type_ in _SCALARS:
        return 0
    return {}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, dict)) and not value)


def _decode_value(type_: str, wire: int, raw: Any) -> Any:
    if type_ in _SCALARS:
        return _scalar(type_, wire, raw)
    return decode_message(type_, bytes(raw))


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf request body -> the object as JSON data (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise BadRequest("protobuf body does not start with the Kubernetes magic number")
    envelope = {n: v for n, _w, v in _fields(body[len(MAGIC) :])}
    type_meta = {n: bytes(v).decode() for n, _w, v in _fields(bytes(envelope.get(1, b"")))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if not kind:
        raise BadRequest("protobuf body does not name its kind")
    obj = decode_message(message_for(api_version, kind), bytes(envelope.get(2, b"")))
    if not isinstance(obj, dict):
        raise BadRequest("protobuf body is not an object")
    return {"apiVersion": api_version, "kind": kind, **obj}


# -- schema compiler (maintainers run this when Kubernetes adds fields) ---------------------------

_FIELD_RE = re.compile(
    r"^\s*(optional|repeated|required)?\s*([\w.]+|map<\s*\w+\s*,\s*[\w.]+\s*>)\s+(\w+)\s*=\s*(\d+)"
)


def compile_proto_files(paths: list[Path]) -> dict[str, Any]:
    """Parse go-to-protobuf ``generated.proto`` files into ``{"messages": {fqn: [[no, name, type,
    repeated], ...]}}`` with every type fully qualified."""
    parsed: list[tuple[str, str, list[tuple[int, str, str, bool]]]] = []
    for path in paths:
        package = ""
        current: str | None = None
        fields: list[tuple[int, str, str, bool]] = []
        for line in path.read_text().splitlines():
            stripped = line.split("//", 1)[0].strip()
            if stripped.startswith("package "):
                package = stripped[len("package ") :].rstrip(";").strip()
            elif stripped.startswith("message ") and current is None:
                current = stripped.split()[1]
                fields = []
            elif stripped == "}" and current is not None:
                parsed.append((package, current, fields))
                current = None
            elif current is not None:
                match = _FIELD_RE.match(stripped)
                if match:
                    label, type_, name, number = match.groups()
                    fields.append((int(number), name, type_.replace(" ", ""), label == "repeated"))
    known = {f"{package}.{name}" for package, name, _ in parsed}

    def qualify(type_: str, package: str) -> str:
        if type_.startswith("map<"):
            key, value = type_[4:-1].split(",", 1)
            return f"map<{qualify(key, package)},{qualify(value, package)}>"
        if type_.startswith("."):
            return type_[1:]
        if type_ in _SCALARS or type_ in known:
            return type_
        local = f"{package}.{type_}"
        return local if local in known else type_

    messages = {
        f"{package}.{name}": [
            [number, field, qualify(type_, package), repeated] for number, field, type_, repeated in fields
        ]
        for package, name, fields in parsed
    }
    return {"messages": messages}


def main(argv: list[str]) -> int:
    schema = compile_proto_files([Path(p) for p in argv])
    SCHEMA_PATH.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    print(f"wrote {len(schema['messages'])} messages to {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
