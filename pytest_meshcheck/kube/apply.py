"""Applying and deleting multi-document manifests with server-side apply.

Server-side apply (field manager ``meshcheck``) makes installs idempotent and lets the harness
re-apply a manifest on a cluster someone else also manages without clobbering their fields.
Namespaces and CRDs go first; a custom resource whose CRD was applied in the same bundle waits
for the CRD to be Established and for discovery to learn the new kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from pytest_meshcheck.errors import InstallError
from pytest_meshcheck.kube.client import Kube, is_not_found, translate, with_retries
from pytest_meshcheck.kube.wait import Progress, wait_until

FIELD_MANAGER = "meshcheck"

#: Kinds applied before everything else, in this order.
FIRST_KINDS = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role")


@dataclass(frozen=True, kw_only=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def load_documents(text: str, *, source: str = "manifest") -> list[dict[str, Any]]:
    """Parse multi-document YAML, dropping empty documents and unrolling ``List`` kinds."""
    try:
        raw_docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InstallError(f"{source} is not valid YAML: {exc}") from exc
    docs: list[dict[str, Any]] = []
    for doc in raw_docs:
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise InstallError(f"{source} has a document that is not a Kubernetes object: {str(doc)[:120]!r}")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            docs.extend(item for item in doc["items"] if isinstance(item, dict))
        else:
            docs.append(doc)
    return docs


def _order(doc: Mapping[str, Any]) -> int:
    kind = str(doc.get("kind", ""))
    return FIRST_KINDS.index(kind) if kind in FIRST_KINDS else len(FIRST_KINDS)


def ref_of(doc: Mapping[str, Any], default_namespace: str = "") -> ObjectRef:
    meta = doc.get("metadata") or {}
    return ObjectRef(
        api_version=str(doc["apiVersion"]),
        kind=str(doc["kind"]),
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace") or default_namespace),
    )


def _resource(kube: Kube, api_version: str, kind: str, *, timeout: float) -> Any:
    """The dynamic resource for a kind, waiting for discovery to learn a freshly applied CRD."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    found: list[Any] = []

    def check() -> Progress:
        try:
            found[:] = [kube.dynamic.resources.get(api_version=api_version, kind=kind)]
        except ResourceNotFoundError:
            kube.refresh_discovery()
            return Progress(False, f"the API server does not serve {kind} ({api_version}) yet")
        return Progress(True, "served")

    wait_until(check, what=f"the API to serve {kind} ({api_version})", timeout=timeout, interval=0.5)
    return found[0]


def apply_documents(
    kube: Kube,
    docs: Iterable[Mapping[str, Any]],
    *,
    namespace: str = "",
    timeout: float = 60.0,
    field_manager: str = FIELD_MANAGER,
) -> list[ObjectRef]:
    """Server-side apply each object (forcing conflicts: the harness owns what it installs)."""
    applied: list[ObjectRef] = []
    for doc in sorted(docs, key=_order):
        body = dict(doc)
        ref = ref_of(body, namespace)
        if not ref.name:
            raise InstallError(f"{ref.kind} without metadata.name cannot be applied")
        resource = _resource(kube, ref.api_version, ref.kind, timeout=timeout)
        if resource.namespaced:
            if not ref.namespace:
                raise InstallError(f"{ref} is namespaced but neither it nor the caller names a namespace")
            body["metadata"] = {**body.get("metadata", {}), "namespace": ref.namespace}
        target_ns = ref.namespace if resource.namespaced else None

        def apply_one(
            resource: Any = resource, body: dict[str, Any] = body, ns: str | None = target_ns
        ) -> Any:
            return resource.server_side_apply(
                body=body,
                name=body["metadata"]["name"],
                namespace=ns,
                field_manager=field_manager,
                force_conflicts=True,
            )

        try:
            with_retries(apply_one, action=f"applying {ref}")
        except Exception as exc:
            raise InstallError(f"applying {ref} failed: {translate(exc, 'apply').message}") from exc
        applied.append(ref)
        if ref.kind == "CustomResourceDefinition":
            wait_for_crd(kube, ref.name, timeout=timeout)
    return applied


def apply_manifest(
    kube: Kube, text: str, *, namespace: str = "", timeout: float = 60.0, source: str = "manifest"
) -> list[ObjectRef]:
    return apply_documents(kube, load_documents(text, source=source), namespace=namespace, timeout=timeout)


def wait_for_crd(kube: Kube, name: str, *, timeout: float) -> None:
    def check() -> Progress:
        crd = kube.dynamic.resources.get(
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
        )
        obj = crd.get(name=name).to_dict()
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Established" and condition.get("status") == "True":
                kube.refresh_discovery()
                return Progress(True, "established")
        return Progress(False, "not established")

    wait_until(check, what=f"CRD {name} to be established", timeout=timeout, interval=0.5)


def delete_documents(
    kube: Kube,
    docs: Iterable[Mapping[str, Any]],
    *,
    namespace: str = "",
    wait: bool = True,
    timeout: float = 120.0,
) -> list[ObjectRef]:
    """Delete objects (reverse apply order), NotFound counting as done; optionally wait until gone."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    deleted: list[tuple[ObjectRef, Any]] = []
    for doc in sorted(docs, key=_order, reverse=True):
        ref = ref_of(doc, namespace)
        try:
            resource = kube.dynamic.resources.get(api_version=ref.api_version, kind=ref.kind)
        except ResourceNotFoundError:
            continue  # its CRD is gone already, so are its objects
        ns = ref.namespace if resource.namespaced else None

        def delete_one(resource: Any = resource, ref: ObjectRef = ref, ns: str | None = ns) -> None:
            try:
                resource.delete(name=ref.name, namespace=ns, body={"propagationPolicy": "Foreground"})
            except Exception as exc:
                if not is_not_found(exc):
                    raise

        with_retries(delete_one, action=f"deleting {ref}")
        deleted.append((ref, resource))
    if wait:
        _wait_gone(deleted, timeout=timeout)
    return [ref for ref, _ in deleted]


def _wait_gone(objects: list[tuple[ObjectRef, Any]], *, timeout: float) -> None:
    def check() -> Progress:
        remaining = []
        for ref, resource in objects:
            try:
                resource.get(name=ref.name, namespace=ref.namespace if resource.namespaced else None)
            except Exception as exc:
                if is_not_found(exc):
                    continue
                raise
            remaining.append(str(ref))
        if remaining:
            return Progress(False, "still present: " + ", ".join(remaining[:5]))
        return Progress(True, "all deleted")

    wait_until(check, what=f"deletion of {len(objects)} objects", timeout=timeout, interval=0.5)
