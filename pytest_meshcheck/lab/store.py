"""The lab's object store: the one source of truth every lab component reads and writes.

It holds objects exactly as the Kubernetes API serves them (plain JSON-able dicts) and implements
the API's semantics in-process: resourceVersions and optimistic concurrency, generations, names
and generateName, namespaces that must exist and stop accepting content while terminating,
finalizers and deletion timestamps, the status and scale subresources, the four patch flavours,
admission, and watches with history. The HTTPS API server is a thin translation layer over it;
controllers, the kubelet and control-plane workloads call it directly.

Locking: one re-entrant lock guards the maps and the history; admission (which may call a webhook
over the network, or the store itself) runs outside it, and writes re-check the resourceVersion
they started from, so a slow webhook never blocks the cluster.
"""

from __future__ import annotations

import builtins
import collections
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_meshcheck.lab.apimachinery import ownership, patches, validation
from pytest_meshcheck.lab.apimachinery.defaults import apply_defaults
from pytest_meshcheck.lab.apimachinery.selectors import parse_field_selector, parse_label_selector
from pytest_meshcheck.lab.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    StoreError,
    UnsupportedMediaType,
    already_exists,
    invalid,
    not_found,
)
from pytest_meshcheck.lab.resources import GVR, ResourceKind, ResourceRegistry

__all__ = [
    "GVR",
    "AdmissionRequest",
    "Store",
    "Watch",
    "WatchEvent",
]

Obj = dict[str, Any]
StorageKey = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace or "", name)

#: How many past changes a watch can resume from.
HISTORY_SIZE = 20000
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PATCH_RETRIES = 20


def clone(obj: Any) -> Any:
    """Deep copy of JSON data (faster than ``copy.deepcopy`` for plain dicts and lists)."""
    return json.loads(json.dumps(obj))


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    type: str
    object: Obj


@dataclass
class AdmissionRequest:
    """What an admission plugin sees. Mutating plugins return the changed ``object`` (or ``None``
    to leave it); validating plugins raise a ``StoreError`` to reject the request."""

    operation: str  # CREATE | UPDATE | DELETE
    kind: ResourceKind
    namespace: str
    name: str
    object: Obj | None
    old_object: Obj | None
    dry_run: bool = False
    subresource: str = ""
    user: str = "system:admin"
    groups: tuple[str, ...] = ("system:masters", "system:authenticated")
    options: Obj = field(default_factory=dict)


MutatingAdmission = Callable[[AdmissionRequest], "Obj | None"]
ValidatingAdmission = Callable[[AdmissionRequest], None]


@dataclass
class _Admission:
    name: str
    mutate: MutatingAdmission | None
    validate: ValidatingAdmission | None


@dataclass
class _Change:
    rv: int
    storage_key: StorageKey
    type: str
    obj: Obj
    old: Obj | None


class Watch:
    """A stream of changes to one resource (or, for in-process controllers, to all of them).

    Thread-safe. ``next`` blocks until an event arrives, the timeout passes (``None``) or the
    watch is closed (``None``; ``closed`` tells which)."""

    def __init__(
        self,
        store: Store,
        kind: ResourceKind | None,
        namespace: str | None,
        label_selector: str,
        field_selector: str,
    ) -> None:
        self._store = store
        self.kind = kind
        self.namespace = namespace
        self._labels = parse_label_selector(label_selector)
        self._fields = parse_field_selector(field_selector)
        self._queue: collections.deque[WatchEvent] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        #: How many synthetic ADDED events for pre-existing objects head the stream.
        self.initial_events = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def _matches(self, storage_key: StorageKey, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.kind is not None and storage_key != self.kind.storage_key:
            return False
        metadata = obj.get("metadata") or {}
        if self.namespace and metadata.get("namespace", "") != self.namespace:
            return False
        return self._labels(metadata.get("labels") or {}) and self._fields(obj)

    def _offer(self, change: _Change) -> None:
        new_match = self._matches(change.storage_key, change.obj)
        old_match = self._matches(change.storage_key, change.old) if change.old is not None else False
        if change.type == "DELETED":
            event_type = "DELETED" if new_match or old_match else ""
        elif new_match and old_match:
            event_type = "MODIFIED"
        elif new_match:
            event_type = "ADDED"
        elif old_match:
            event_type = "DELETED"
        else:
            event_type = ""
        if event_type:
            self._push(WatchEvent(event_type, self._relabel(clone(change.obj))))

    def _relabel(self, obj: Obj) -> Obj:
        if self.kind is not None and obj.get("apiVersion") != self.kind.api_version:
            obj["apiVersion"] = self.kind.api_version
        return obj

    def _push(self, event: WatchEvent) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.append(event)
            self._cond.notify_all()

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._queue:
                return self._queue.popleft()
            return None

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            event = self.next(None)
            if event is None:
                return
            yield event

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._store._forget(self)


class Store:
    """See the module docstring. All objects returned are deep copies the caller may mutate."""

    def __init__(self, registry: ResourceRegistry | None = None) -> None:
        self._registry = registry or ResourceRegistry()
        self._lock = threading.RLock()
        self._objects: dict[StorageKey, dict[ObjectKey, Obj]] = collections.defaultdict(dict)
        #: The same objects by (resource, namespace) -> name, so namespaced lists skip the rest.
        self._namespaced: dict[tuple[StorageKey, str], dict[str, Obj]] = collections.defaultdict(dict)
        self._by_uid: dict[str, tuple[StorageKey, ObjectKey]] = {}
        self._rv = 0
        self._history: collections.deque[_Change] = collections.deque(maxlen=HISTORY_SIZE)
        self._watches: list[Watch] = []
        self._admission: list[_Admission] = []

    # -- registry and admission ------------------------------------------------------------------

    def kinds(self) -> ResourceRegistry:
        return self._registry

    def add_admission(
        self,
        name: str,
        *,
        mutate: MutatingAdmission | None = None,
        validate: ValidatingAdmission | None = None,
    ) -> None:
        """Register an admission plugin; mutating plugins run in registration order, then all
        validating ones (as on a real API server)."""
        with self._lock:
            self._admission = [a for a in self._admission if a.name != name]
            self._admission.append(_Admission(name, mutate, validate))

    def remove_admission(self, name: str) -> None:
        with self._lock:
            self._admission = [a for a in self._admission if a.name != name]

    def _admit(self, request: AdmissionRequest) -> Obj | None:
        with self._lock:
            plugins = list(self._admission)
        for plugin in plugins:
            if plugin.mutate is not None:
                changed = plugin.mutate(request)
                if changed is not None:
                    request.object = changed
        for plugin in plugins:
            if plugin.validate is not None:
                plugin.validate(request)
        return request.object

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def _kind(self, gvr: GVR) -> ResourceKind:
        return self._registry.get(gvr)

    def _object_key(self, kind: ResourceKind, namespace: str | None, name: str) -> ObjectKey:
        if kind.namespaced:
            if not namespace:
                raise BadRequest(f"a namespace is required for {kind.qualified_resource}")
            return (namespace, name)
        return ("", name)

    def _put(self, storage_key: StorageKey, key: ObjectKey, obj: Obj) -> None:
        self._objects[storage_key][key] = obj
        if key[0]:
            self._namespaced[(storage_key, key[0])][key[1]] = obj

    def _drop(self, storage_key: StorageKey, key: ObjectKey) -> None:
        del self._objects[storage_key][key]
        if key[0]:
            bucket = self._namespaced.get((storage_key, key[0]))
            if bucket is not None:
                bucket.pop(key[1], None)
                if not bucket:
                    del self._namespaced[(storage_key, key[0])]

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, kind_key: StorageKey, event_type: str, obj: Obj, old: Obj | None) -> None:
        change = _Change(int(obj["metadata"]["resourceVersion"]), kind_key, event_type, obj, old)
        self._history.append(change)
        for watch in list(self._watches):
            watch._offer(change)

    def _forget(self, watch: Watch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def _present(self, kind: ResourceKind, obj: Obj) -> Obj:
        out: Obj = clone(obj)
        out["apiVersion"] = kind.api_version
        return out

    def _check_namespace(self, kind: ResourceKind, namespace: str, name: str) -> None:
        if not kind.namespaced:
            return
        ns = self._objects[("", "namespaces")].get(("", namespace))
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f'{kind.resource} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                kind=kind.resource,
                group=kind.group,
            )

    # -- reads -----------------------------------------------------------------------------------

    def get(self, gvr: GVR, namespace: str | None, name: str) -> Obj:
        kind = self._kind(gvr)
        key = self._object_key(kind, namespace, name)
        with self._lock:
            obj = self._objects[kind.storage_key].get(key)
            if obj is None:
                raise not_found(kind.resource, kind.group, name)
            return self._present(kind, obj)

    def get_by_uid(self, uid: str) -> tuple[ResourceKind, Obj] | None:
        """For the garbage collector: the object (and its kind) with this uid, if any."""
        with self._lock:
            location = self._by_uid.get(uid)
            if location is None:
                return None
            storage_key, key = location
            kind = self._registry.any_version(*storage_key)
            obj = self._objects[storage_key].get(key)
            if kind is None or obj is None:
                return None
            return kind, self._present(kind, obj)

    def list(
        self,
        gvr: GVR,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Obj], str]:
        kind = self._kind(gvr)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        with self._lock:
            items = []
            if namespace and kind.namespaced:
                candidates = sorted(self._namespaced.get((kind.storage_key, namespace), {}).items())
            else:
                candidates = [(key[1], obj) for key, obj in sorted(self._objects[kind.storage_key].items())]
            for _name, obj in candidates:
                if not labels(obj["metadata"].get("labels") or {}) or not fields(obj):
                    continue
                items.append(self._present(kind, obj))
            return items, str(self._rv)

    def all_objects(self) -> builtins.list[tuple[ResourceKind, Obj]]:
        """Every stored object with its kind, for the garbage collector and diagnostics."""
        with self._lock:
            out: builtins.list[tuple[ResourceKind, Obj]] = []
            for storage_key, objects in self._objects.items():
                kind = self._registry.any_version(*storage_key)
                if kind is None:
                    continue
                out.extend((kind, self._present(kind, obj)) for obj in objects.values())
            return out

    def all_metadata(self) -> builtins.list[tuple[ResourceKind, Obj]]:
        """Every object reduced to what controllers of ownership need (apiVersion, kind,
        metadata, and a namespace's ``spec.finalizers``): far cheaper than ``all_objects``."""
        with self._lock:
            out: builtins.list[tuple[ResourceKind, Obj]] = []
            for storage_key, objects in self._objects.items():
                kind = self._registry.any_version(*storage_key)
                if kind is None:
                    continue
                for obj in objects.values():
                    partial: Obj = {
                        "apiVersion": kind.api_version,
                        "kind": kind.kind,
                        "metadata": clone(obj["metadata"]),
                    }
                    if storage_key == ("", "namespaces"):
                        partial["spec"] = {
                            "finalizers": list((obj.get("spec") or {}).get("finalizers") or [])
                        }
                    out.append((kind, partial))
            return out

    def get_scale(self, gvr: GVR, namespace: str | None, name: str) -> Obj:
        kind = self._kind(gvr)
        return self._scale_of(kind, self.get(gvr, namespace, name))

    def _scale_of(self, kind: ResourceKind, obj: Obj) -> Obj:
        if "scale" not in kind.subresources:
            raise NotFound(
                f"the server could not find the requested resource ({kind.qualified_resource}/scale)"
            )
        spec_path, status_path, selector_path = self._scale_paths(kind)
        selector = _dig(obj, selector_path)
        if isinstance(selector, dict):
            from pytest_meshcheck.lab.apimachinery.selectors import selector_to_string

            selector = selector_to_string(selector)
        status: Obj = {"replicas": int(_dig(obj, status_path) or 0)}
        if selector:
            status["selector"] = selector
        metadata = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata.get("namespace", ""),
                "uid": metadata["uid"],
                "resourceVersion": metadata["resourceVersion"],
                "creationTimestamp": metadata["creationTimestamp"],
            },
            "spec": {"replicas": int(_dig(obj, spec_path) or 0)},
            "status": status,
        }

    @staticmethod
    def _scale_paths(kind: ResourceKind) -> tuple[str, str, str]:
        if kind.crd:
            return kind.scale_paths
        return (".spec.replicas", ".status.replicas", ".spec.selector")

    # -- writes ----------------------------------------------------------------------------------

    def create(
        self,
        gvr: GVR,
        obj: Obj,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str = "",
    ) -> Obj:
        kind = self._kind(gvr)
        if "create" not in kind.verbs:
            raise Forbidden(f"{kind.qualified_resource} does not support create")
        if not isinstance(obj, dict):
            raise BadRequest("the object must be a JSON object")
        new = clone(obj)
        self._check_type(kind, new)
        metadata = new.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        if kind.namespaced:
            body_ns = metadata.get("namespace") or ""
            if namespace and body_ns and body_ns != namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = namespace or body_ns
            if not ns:
                raise BadRequest(f"a namespace is required for {kind.qualified_resource}")
            metadata["namespace"] = ns
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = str(metadata["generateName"]) + "".join(
                secrets.choice(_GENERATE_ALPHABET) for _ in range(5)
            )
        causes = validation.metadata_causes(new, kind.storage_key)
        if not kind.crd:
            causes += validation.kind_causes(new, kind.kind)
        if causes:
            raise invalid(kind.kind, kind.group, str(metadata.get("name") or ""), causes)
        for stale in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            metadata.pop(stale, None)
        apply_defaults(kind, new)
        with self._lock:
            self._check_namespace(kind, metadata.get("namespace", ""), metadata["name"])
        if kind.crd == "" and kind.storage_key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            from pytest_meshcheck.lab.resources import validate_crd

            crd_causes = validate_crd(new)
            if crd_causes:
                raise invalid(kind.kind, kind.group, metadata["name"], crd_causes)
        request = AdmissionRequest(
            "CREATE", kind, metadata.get("namespace", ""), metadata["name"], new, None, dry_run
        )
        admitted = self._admit(request)
        if admitted is not None:
            new = admitted
        if field_manager:
            ownership.record_update(None, new, manager=field_manager, api_version=kind.api_version)
        with self._lock:
            self._check_namespace(kind, new["metadata"].get("namespace", ""), new["metadata"]["name"])
            key = self._object_key(kind, new["metadata"].get("namespace"), new["metadata"]["name"])
            if key in self._objects[kind.storage_key]:
                raise already_exists(kind.resource, kind.group, key[1])
            meta = new["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return self._present(kind, new)
            meta["resourceVersion"] = str(self._next_rv())
            self._on_crd_written(kind, new)
            self._put(kind.storage_key, key, new)
            self._by_uid[meta["uid"]] = (kind.storage_key, key)
            self._record(kind.storage_key, "ADDED", clone(new), None)
            return self._present(kind, new)

    def update(
        self,
        gvr: GVR,
        obj: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str = "",
    ) -> Obj:
        kind = self._kind(gvr)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise BadRequest("the object must be a JSON object with metadata")
        metadata = obj["metadata"]
        name = metadata.get("name") or ""
        if not name:
            raise invalid(
                kind.kind,
                kind.group,
                "",
                [{"field": "metadata.name", "message": "Required value: name is required"}],
            )
        if subresource == "scale":
            return self._update_scale(kind, metadata.get("namespace"), obj, dry_run=dry_run)
        if subresource not in (None, "", "status", "finalize", "approval"):
            raise NotFound(
                f"the server could not find the requested resource ({kind.qualified_resource}/{subresource})"
            )
        return self._write(
            kind,
            metadata.get("namespace"),
            name,
            lambda current: obj,
            subresource=subresource or "",
            dry_run=dry_run,
            field_manager=field_manager,
            check_rv=True,
        )

    def _update_scale(self, kind: ResourceKind, namespace: str | None, scale: Obj, *, dry_run: bool) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                scale["metadata"]["name"],
                [{"field": "spec.replicas", "message": "Invalid value: must be greater than or equal to 0"}],
            )
        spec_path = self._scale_paths(kind)[0]
        expected_rv = scale["metadata"].get("resourceVersion") or ""

        def change(current: Obj) -> Obj:
            if expected_rv and expected_rv != current["metadata"]["resourceVersion"]:
                raise _conflict(kind, current["metadata"]["name"])
            new: Obj = clone(current)
            _set_path(new, spec_path, replicas)
            return new

        written = self._write(
            kind,
            namespace,
            scale["metadata"]["name"],
            change,
            subresource="",
            dry_run=dry_run,
            field_manager="",
            check_rv=False,
        )
        return self._scale_of(kind, written)

    def _write(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Obj],
        *,
        subresource: str,
        dry_run: bool,
        field_manager: str,
        check_rv: bool,
        operation: str = "UPDATE",
    ) -> Obj:
        """Read-modify-write with admission outside the lock; retried when the object moved on
        underneath (unless the caller pinned a resourceVersion, then that is a Conflict)."""
        key = self._object_key(kind, namespace, name)
        for _attempt in range(_PATCH_RETRIES):
            with self._lock:
                stored = self._objects[kind.storage_key].get(key)
                if stored is None:
                    raise not_found(kind.resource, kind.group, name)
                current = self._present(kind, stored)
            proposed = change(clone(current))
            if not isinstance(proposed, dict):
                raise BadRequest("the patched object is not a JSON object")
            new = clone(proposed)
            self._check_type(kind, new)
            meta = new.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise BadRequest("metadata must be an object")
            asked_rv = str(meta.get("resourceVersion") or "")
            if check_rv and asked_rv and asked_rv != current["metadata"]["resourceVersion"]:
                raise _conflict(kind, name)
            if meta.get("name", name) != name:
                raise BadRequest(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            new = self._merge_subresource(kind, current, new, subresource)
            meta = new["metadata"]
            for fixed in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
            ):
                if fixed in current["metadata"]:
                    meta[fixed] = current["metadata"][fixed]
                else:
                    meta.pop(fixed, None)
            meta["name"] = name
            meta["generation"] = current["metadata"].get("generation", 1)
            apply_defaults(kind, new)
            causes = validation.metadata_causes(new, kind.storage_key)
            if not kind.crd and subresource not in ("status", "approval"):
                causes += validation.kind_causes(new, kind.kind)
                causes += validation.immutable_causes(current, new, kind.kind)
            if causes:
                raise invalid(kind.kind, kind.group, name, causes)
            if _spec_of(new) != _spec_of(current):
                meta["generation"] = int(meta["generation"]) + 1
            if meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(current["metadata"].get("finalizers") or [])
                if added:
                    raise Forbidden(
                        "no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)!r}"
                    )
            request = AdmissionRequest(
                operation,
                kind,
                current["metadata"].get("namespace", ""),
                name,
                new,
                current,
                dry_run,
                subresource,
            )
            admitted = self._admit(request)
            if admitted is not None:
                new = admitted
            if field_manager:
                ownership.record_update(
                    current, new, manager=field_manager, api_version=kind.api_version, subresource=subresource
                )
            elif "managedFields" in current["metadata"] and "managedFields" not in new["metadata"]:
                new["metadata"]["managedFields"] = current["metadata"]["managedFields"]
            with self._lock:
                stored = self._objects[kind.storage_key].get(key)
                if stored is None:
                    raise not_found(kind.resource, kind.group, name)
                if stored["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
                    if check_rv and asked_rv:
                        raise _conflict(kind, name)
                    continue
                if _same_content(stored, new):
                    return self._present(kind, stored)
                if dry_run:
                    return self._present(kind, new)
                new["metadata"]["resourceVersion"] = str(self._next_rv())
                self._on_crd_written(kind, new)
                if self._is_finished(kind, new):
                    return self._remove(kind, key, stored, new)
                self._put(kind.storage_key, key, new)
                self._record(kind.storage_key, "MODIFIED", clone(new), clone(stored))
                return self._present(kind, new)
        raise Conflict(
            f'Operation cannot be fulfilled on {kind.qualified_resource} "{name}": too many concurrent writes'
        )

    def _merge_subresource(self, kind: ResourceKind, current: Obj, new: Obj, subresource: str) -> Obj:
        if subresource in ("status", "approval"):  # a CSR approval is a write to its status
            merged: Obj = clone(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            merged["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion", "")
            return merged
        if subresource == "finalize":
            merged = clone(current)
            merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            return merged
        if "status" in kind.subresources:
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
        return new

    def _is_finished(self, kind: ResourceKind, obj: Obj) -> bool:
        """A deleted object goes away once its last finalizer (and, for namespaces, the
        namespace finalizer) is gone."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if kind.storage_key == ("", "pods") and meta.get("deletionGracePeriodSeconds"):
            return False  # the kubelet removes it once its containers have stopped
        return not (kind.storage_key == ("", "namespaces") and (obj.get("spec") or {}).get("finalizers"))

    def _remove(self, kind: ResourceKind, key: ObjectKey, stored: Obj, final: Obj) -> Obj:
        final["metadata"]["resourceVersion"] = final["metadata"].get("resourceVersion") or str(
            self._next_rv()
        )
        self._drop(kind.storage_key, key)
        self._by_uid.pop(stored["metadata"]["uid"], None)
        self._record(kind.storage_key, "DELETED", clone(final), clone(stored))
        if kind.storage_key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._drop_crd(final)
        return self._present(kind, final)

    def patch(
        self,
        gvr: GVR,
        namespace: str | None,
        name: str,
        patch: object,
        *,
        patch_type: str,
        subresource: str | None = None,
        field_manager: str = "",
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        kind = self._kind(gvr)
        if patch_type not in ("json", "merge", "strategic", "apply"):
            raise BadRequest(f"unknown patch type {patch_type!r}")
        if patch_type == "apply":
            if not isinstance(patch, dict):
                raise BadRequest("apply patches must be objects")
            if not field_manager:
                raise BadRequest("PATCH /apply requires fieldManager to be set")
            return self._apply(
                kind=kind,
                namespace=namespace,
                name=name,
                applied=patch,
                subresource=subresource or "",
                manager=field_manager,
                force=force,
                dry_run=dry_run,
            )
        if patch_type == "strategic" and kind.crd:
            raise UnsupportedMediaType(
                f"strategic merge patch is not supported for {kind.qualified_resource}: "
                "use merge or json patch"
            )
        if subresource == "scale":
            scale = self.get_scale(gvr, namespace, name)
            patched = patches.apply_patch(scale, patch, patch_type)
            patched["metadata"]["name"] = name
            if kind.namespaced:
                patched["metadata"]["namespace"] = namespace or ""
            return self._update_scale(kind, namespace, patched, dry_run=dry_run)
        return self._write(
            kind,
            namespace,
            name,
            lambda current: patches.apply_patch(current, patch, patch_type),
            subresource=subresource or "",
            dry_run=dry_run,
            field_manager=field_manager,
            check_rv=_pins_resource_version(patch, patch_type),
        )

    def _apply(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None,
        name: str,
        applied: Obj,
        subresource: str,
        manager: str,
        force: bool,
        dry_run: bool,
    ) -> Obj:
        self._check_type(kind, applied)
        body_name = (applied.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise BadRequest(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        try:
            self.get(kind.gvr, namespace, name)
        except NotFound:
            created = ownership.server_side_apply(
                None,
                applied,
                manager=manager,
                force=force,
                api_version=kind.api_version,
                merge=patches.apply_strategic_merge_patch,
            )
            created.setdefault("metadata", {})["name"] = name
            created["apiVersion"] = kind.api_version
            created["kind"] = kind.kind
            try:
                return self.create(kind.gvr, created, namespace=namespace, dry_run=dry_run)
            except AlreadyExists:
                pass
        return self._write(
            kind,
            namespace,
            name,
            lambda current: ownership.server_side_apply(
                current,
                applied,
                manager=manager,
                force=force,
                api_version=kind.api_version,
                merge=patches.apply_strategic_merge_patch,
            ),
            subresource=subresource,
            dry_run=dry_run,
            field_manager="",
            check_rv=_pins_resource_version(applied, "apply"),
        )

    def delete(
        self,
        gvr: GVR,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
        dry_run: bool = False,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        """Delete now, or (when finalizers remain, or for a namespace, or with Foreground/Orphan
        propagation) mark with ``deletionTimestamp`` and let the finalizers' owners finish.

        A pod bound to a node is deleted gracefully, as on a real cluster: it is marked with
        ``deletionTimestamp`` = now + grace period and the kubelet removes it, after stopping its
        containers, with ``grace_period_seconds=0``. Unscheduled and finished pods go at once."""
        kind = self._kind(gvr)
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise BadRequest(f"unsupported propagation policy {propagation!r}")
        key = self._object_key(kind, namespace, name)
        with self._lock:
            stored = self._objects[kind.storage_key].get(key)
            if stored is None:
                raise not_found(kind.resource, kind.group, name)
            current = self._present(kind, stored)
        if preconditions_uid and preconditions_uid != current["metadata"]["uid"]:
            raise Conflict(
                f"Precondition failed: UID in precondition: {preconditions_uid}, "
                f"UID in object meta: {current['metadata']['uid']}"
            )
        if (
            preconditions_resource_version
            and preconditions_resource_version != current["metadata"]["resourceVersion"]
        ):
            raise Conflict(
                f"Precondition failed: ResourceVersion in precondition: {preconditions_resource_version}, "
                f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}"
            )
        request = AdmissionRequest(
            "DELETE",
            kind,
            current["metadata"].get("namespace", ""),
            name,
            None,
            current,
            dry_run,
            options={"propagationPolicy": propagation},
        )
        self._admit(request)
        if dry_run:
            return current
        with self._lock:
            stored = self._objects[kind.storage_key].get(key)
            if stored is None:
                raise not_found(kind.resource, kind.group, name)
            new: Obj = clone(stored)
            meta = new["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            is_namespace = kind.storage_key == ("", "namespaces")
            grace = _pod_grace(kind, stored, grace_period_seconds)
            if (
                propagation == "Foreground"
                and "foregroundDeletion" not in finalizers
                and not meta.get("deletionTimestamp")
            ):
                finalizers.append("foregroundDeletion")
            if propagation == "Orphan" and "orphan" not in finalizers and not meta.get("deletionTimestamp"):
                finalizers.append("orphan")
            if not finalizers and not is_namespace and grace == 0:
                return self._remove(kind, key, stored, new)
            shortened = grace == 0 and bool(meta.get("deletionGracePeriodSeconds"))
            if shortened:
                meta["deletionGracePeriodSeconds"] = 0
            if (
                meta.get("deletionTimestamp")
                and finalizers == list(meta.get("finalizers") or [])
                and not shortened
            ):
                return self._present(kind, stored)
            meta["finalizers"] = finalizers
            if not finalizers:
                meta.pop("finalizers")
            if not meta.get("deletionTimestamp"):
                deadline = datetime.now(UTC) + timedelta(seconds=grace)
                meta["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["deletionGracePeriodSeconds"] = grace
            if is_namespace:
                new.setdefault("status", {})["phase"] = "Terminating"
            meta["resourceVersion"] = str(self._next_rv())
            if self._is_finished(kind, new):
                return self._remove(kind, key, stored, new)
            self._put(kind.storage_key, key, new)
            self._record(kind.storage_key, "MODIFIED", clone(new), clone(stored))
            return self._present(kind, new)

    # -- watch -----------------------------------------------------------------------------------

    def watch(
        self,
        gvr: GVR | None,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Watch:
        """``resource_version`` None/""/"0": ADDED for every current object first, then changes.
        A specific version: the changes after it (``Gone`` when history no longer reaches back).
        ``gvr=None`` watches every resource (in-process controllers only)."""
        kind = self._kind(gvr) if gvr is not None else None
        watch = Watch(self, kind, namespace, label_selector, field_selector)
        with self._lock:
            if resource_version in (None, "", "0"):
                keys = [kind.storage_key] if kind is not None else list(self._objects)
                for storage_key in keys:
                    for _key, obj in sorted(self._objects[storage_key].items()):
                        if watch._matches(storage_key, obj):
                            watch._push(WatchEvent("ADDED", watch._relabel(clone(obj))))
                            watch.initial_events += 1
            else:
                try:
                    since = int(str(resource_version))
                except ValueError as exc:
                    raise BadRequest(f"invalid resource version {resource_version!r}") from exc
                oldest = self._history[0].rv if self._history else self._rv + 1
                if since < oldest - 1 and since < self._rv:
                    raise Gone(f"too old resource version: {since} ({oldest - 1})")
                for change in self._history:
                    if change.rv > since:
                        watch._offer(change)
            self._watches.append(watch)
        return watch

    # -- type checks and CRDs --------------------------------------------------------------------

    def _check_type(self, kind: ResourceKind, obj: Obj) -> None:
        api_version = obj.get("apiVersion")
        obj_kind = obj.get("kind")
        if obj_kind and obj_kind != kind.kind:
            raise BadRequest(
                f"the object kind {obj_kind!r} does not match the resource "
                f"{kind.qualified_resource!r} (kind {kind.kind!r})"
            )
        if api_version:
            group = str(api_version).rpartition("/")[0]
            if group != kind.group:
                raise BadRequest(
                    f"the API version in the data ({api_version}) does not match the expected "
                    f"API version ({kind.api_version})"
                )
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind

    def _on_crd_written(self, kind: ResourceKind, crd: Obj) -> None:
        if kind.storage_key != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        if crd["metadata"].get("deletionTimestamp"):
            return
        try:
            self._registry.register_crd(crd)
        except StoreError:
            raise
        names = crd["spec"]["names"]
        accepted = {
            k: v
            for k, v in names.items()
            if k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
        }
        accepted.setdefault("singular", str(names["kind"]).lower())
        accepted.setdefault("listKind", f"{names['kind']}List")
        stamp = now_rfc3339()
        crd["status"] = {
            "acceptedNames": accepted,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": stamp,
                },
            ],
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
        }

    def _drop_crd(self, crd: Obj) -> None:
        """A CRD's deletion removes its custom resources (the real server's cleanup finalizer)."""
        name = crd["metadata"]["name"]
        removed = self._registry.unregister_crd(name)
        for kind in removed[:1]:
            for key, obj in list(self._objects[kind.storage_key].items()):
                self._drop(kind.storage_key, key)
                self._by_uid.pop(obj["metadata"]["uid"], None)
                gone: Obj = clone(obj)
                gone["metadata"]["resourceVersion"] = str(self._next_rv())
                self._record(kind.storage_key, "DELETED", gone, clone(obj))

    def restore_crds(self) -> None:
        """Re-register stored CRDs (after loading a snapshot)."""
        for kind, crd in self.all_objects():
            if kind.storage_key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._registry.register_crd(crd)


def _pod_grace(kind: ResourceKind, pod: Obj, requested: int | None) -> int:
    """Seconds a deleted pod gets to terminate; 0 means remove now."""
    if kind.storage_key != ("", "pods"):
        return 0
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(int(requested), 0)
    default = spec.get("terminationGracePeriodSeconds")
    return int(default) if isinstance(default, int) and default >= 0 else 30


def _pins_resource_version(patch: object, patch_type: str) -> bool:
    """Whether a patch (or an applied configuration) carries its own resourceVersion: then it is a
    precondition and losing a race is a Conflict. Without one the patched object only inherits the
    current version, and a write that lost a race is re-applied to the new object, as the API
    server's patcher does (``kubectl rollout restart`` or ``label`` never see a Conflict)."""
    if patch_type == "json":
        return isinstance(patch, list) and any(
            isinstance(op, dict) and str(op.get("path", "")).rstrip("/") == "/metadata/resourceVersion"
            for op in patch
        )
    metadata = patch.get("metadata") if isinstance(patch, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("resourceVersion"))


def _conflict(kind: ResourceKind, name: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {kind.qualified_resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        kind=kind.resource,
        group=kind.group,
        name=name,
    )


def _spec_of(obj: Obj) -> Obj:
    """Everything a generation tracks: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same_content(stored: Obj, new: Obj) -> bool:
    a = {k: v for k, v in stored.items() if k != "metadata"}
    b = {k: v for k, v in new.items() if k != "metadata"}
    ma = {k: v for k, v in stored["metadata"].items() if k != "resourceVersion"}
    mb = {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
    return a == b and ma == mb


def _dig(obj: Obj, path: str) -> Any:
    current: Any = obj
    for part in path.strip(".").split("."):
        if not part:
            continue
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.strip(".").split(".") if p]
    current = obj
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value
