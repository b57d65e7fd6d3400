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


def istio_images(version: str, hub: str = "docker.io/istio") -> list[str]:
    """The control-plane and proxy images of an Istio release (the ingress gateway runs proxyv2)."""
    return [f"{hub}/pilot:{version}", f"{hub}/proxyv2:{version}"]


def run_images(istio_version: str, *, registry: str = "", upgrade_to: str = "") -> list[str]:
    """Every image a run pulls (the upgrade target's too), rewritten onto ``registry`` if given."""
    from pytest_meshcheck.install.addons import addon_pins
    from pytest_meshcheck.kube.apply import load_documents
    from pytest_meshcheck.resources import data_file

    images = istio_images(istio_version)
    if upgrade_to:
        images += istio_images(upgrade_to)
    pins = addon_pins(istio_version)
    images += [pins.prometheus_image, pins.kiali_image]
    for parts in (("bookinfo", "bookinfo.yaml"), ("probes", "httpbin.yaml"), ("probes", "curl.yaml")):
        images += images_in(load_documents(data_file(*parts).read_text(), source="/".join(parts)))
    unique = list(dict.fromkeys(images))
    return [rewrite_image(image, registry) for image in unique]
