"""Which container images a run deploys, and rewriting them onto a private registry.

Air-gapped clusters (an EKS cluster without internet egress, say) pull from a mirror such as ECR.
``meshcheck images`` prints the list to mirror; ``--meshcheck-image-registry`` swaps the registry
part of every image the harness applies while keeping repository paths and tags, so
``docker.io/istio/proxyv2:1.27.1`` becomes ``<registry>/istio/proxyv2:1.27.1``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

#: Kinds whose ``spec.template.spec`` is a pod spec, and where to find it.
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def split_registry(image: str) -> tuple[str, str]:
    """``(registry, rest)``; Docker Hub's implicit registry is made explicit as ``docker.io``."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", image if "/" in image else f"library/{image}"


def rewrite_image(image: str, registry: str) -> str:
    if not registry:
        return image
    _, rest = split_registry(image)
    return f"{registry.rstrip('/')}/{rest}"


def pod_specs(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    kind = doc.get("kind")
    if kind == "Pod":
        spec = doc.get("spec")
        if isinstance(spec, dict):
            yield spec
    elif kind in _POD_TEMPLATE_KINDS:
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(spec, dict):
            yield spec
    elif kind == "CronJob":
        job = ((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        spec = (job.get("template") or {}).get("spec")
        if isinstance(spec, dict):
            yield spec


def images_in(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every container image the documents deploy, in first-seen order."""
    seen: dict[str, None] = {}
    for doc in docs:
        for spec in pod_specs(doc):
            for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
                if container.get("image"):
                    seen[str(container["image"])] = None
    return list(seen)


def rewrite_documents(docs: Iterable[Mapping[str, Any]], registry: str) -> list[dict[str, Any]]:
    """Copies of ``docs`` with every container image moved onto ``registry``."""
    result = []
    for doc in docs:
        copied = copy.deepcopy(dict(doc))
        if registry:
            for spec in pod_specs(copied):
                for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
                    if container.get("image"):
                        container["image"] = rewrite_image(str(container["image"]), registry)
        result.append(copied)
    return result
