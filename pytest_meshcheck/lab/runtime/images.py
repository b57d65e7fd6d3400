"""The lab's image registry: image references -> Python workload factories.

A reference is normalised the way containerd normalises it (``nginx`` is
``docker.io/library/nginx``, ``istio/proxyv2:1.27.1`` is ``docker.io/istio/proxyv2``) and matched
by repository, any tag or digest, against glob patterns. An unmatched reference is an image that
"does not exist": the kubelet reports ``ErrImagePull`` and then ``ImagePullBackOff`` for it, just
as a node does for a typo in an image name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from dataclasses import dataclass

from pytest_meshcheck.lab.contract import WorkloadFactory

_DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference."""

    repository: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        text = reference.strip()
        digest = ""
        if "@" in text:
            text, digest = text.split("@", 1)
        tag = ""
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
        parts = text.split("/")
        if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            parts = [_DEFAULT_REGISTRY, *parts]
        if parts[0] == _DEFAULT_REGISTRY and len(parts) == 2:
            parts = [_DEFAULT_REGISTRY, "library", parts[1]]
        if not tag and not digest:
            tag = "latest"
        return cls(repository="/".join(parts).lower(), tag=tag, digest=digest)

    @property
    def full(self) -> str:
        ref = self.repository + (f":{self.tag}" if self.tag else "")
        return ref + (f"@{self.digest}" if self.digest else "")

    @property
    def image_id(self) -> str:
        """A stable content digest, as ``containerStatuses[].imageID`` shows one."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        content = hashlib.sha256(f"meshcheck-lab:{self.repository}:{self.tag}".encode()).hexdigest()
        return f"{self.repository}@sha256:{content}"


class ImageNotFound(LookupError):
    """The registry has no workload for this reference (the kubelet's ErrImagePull)."""


class ImageRegistry:
    """Repository patterns -> workload factories. Later registrations win over earlier ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[str, WorkloadFactory]] = []

    def register(self, pattern: str, factory: WorkloadFactory) -> None:
        """``pattern`` is a glob over normalised repositories (``*/examples-bookinfo-ratings-v1``);
        a pattern without a registry part is normalised like a reference."""
        first = pattern.split("/", maxsplit=1)[0]
        normalized = pattern if "*" in first else ImageRef.parse(pattern).repository
        with self._lock:
            self._entries.insert(0, (normalized.lower(), factory))

    def lookup(self, reference: str) -> tuple[ImageRef, WorkloadFactory]:
        ref = ImageRef.parse(reference)
        with self._lock:
            entries = list(self._entries)
        for pattern, factory in entries:
            if fnmatch.fnmatchcase(ref.repository, pattern):
                return ref, factory
        raise ImageNotFound(reference)

    def knows(self, reference: str) -> bool:
        try:
            self.lookup(reference)
        except ImageNotFound:
            return False
        return True
