"""Each container's small, in-memory filesystem: what ``curl -o`` writes and ``cat`` reads back.

A real container's files outlive a single ``kubectl exec``; so do these, keyed by pod UID and
container name. The registry is bounded (least recently used containers are forgotten first), as
is every container's total size, so a long lab run cannot grow without limit. A few files are
generated from the pod, as the kubelet writes them: ``/etc/hostname``, ``/etc/hosts`` and
``/etc/resolv.conf``.
"""

from __future__ import annotations

import contextlib
import posixpath
import threading
from collections import OrderedDict

from pytest_meshcheck.lab.contract import WorkloadContext

MAX_CONTAINERS = 512
MAX_BYTES_PER_CONTAINER = 32 * 1024 * 1024
CLUSTER_DOMAIN = "cluster.local"
#: The directories every image shows, so ``ls /`` and ``cd /tmp`` look like a Linux root.
SYSTEM_DIRS: tuple[str, ...] = (
    "/bin",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/local",
    "/usr/local/bin",
    "/var",
)
#: Device files with their usual meaning; writes to them never land in the store.
DEVICES = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/zero", "/dev/urandom")
_READ_ONLY_ROOTS = ("/proc", "/sys", "/dev")


class FileError(Exception):
    """Carries an errno-style reason: ``No such file or directory``, ``Is a directory`` ..."""


class ContainerFiles:
    """The files of one container (thread-safe: several execs may run at once)."""

    def __init__(self, ctx: WorkloadContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._dirs: set[str] = {"/", *SYSTEM_DIRS, "/home/curl_user"}

    def read(self, path: str) -> bytes:
        path = normalise(path)
        generated = self._generated(path)
        if generated is not None:
            return generated
        with self._lock:
            if path in self._files:
                return self._files[path]
            if path in self._dirs:
                raise FileError("Is a directory")
        if path == "/dev/null":
            return b""
        raise FileError("No such file or directory")

    def write(self, path: str, data: bytes, *, append: bool = False) -> None:
        path = normalise(path)
        if path in DEVICES:
            return
        if path.startswith(_READ_ONLY_ROOTS) or path in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            raise FileError("Read-only file system")
        parent = posixpath.dirname(path)
        with self._lock:
            if path in self._dirs:
                raise FileError("Is a directory")
            if parent not in self._dirs:
                raise FileError("No such file or directory")
            new = (self._files.get(path, b"") + data) if append else data
            used = sum(len(content) for name, content in self._files.items() if name != path)
            if used + len(new) > MAX_BYTES_PER_CONTAINER:
                raise FileError("No space left on device")
            self._files[path] = new

    def exists(self, path: str) -> bool:
        path = normalise(path)
        with self._lock:
            stored = path in self._files or path in self._dirs
        return stored or path in DEVICES or self._generated(path) is not None

    def is_dir(self, path: str) -> bool:
        with self._lock:
            return normalise(path) in self._dirs

    def make_dir(self, path: str) -> None:
        path = normalise(path)
        with self._lock:
            if posixpath.dirname(path) not in self._dirs:
                raise FileError("No such file or directory")
            if path in self._files:
                raise FileError("File exists")
            self._dirs.add(path)

    def remove(self, path: str) -> None:
        path = normalise(path)
        with self._lock:
            if path not in self._files:
                raise FileError("No such file or directory")
            del self._files[path]

    def list_dir(self, path: str) -> list[str]:
        path = normalise(path)
        with self._lock:
            if path not in self._dirs:
                if path in self._files:
                    return [posixpath.basename(path)]
                raise FileError("No such file or directory")
            entries = (*self._files, *self._dirs)
            names = {posixpath.basename(name) for name in entries if _parent(name) == path}
        if path == "/etc":
            names.update({"hostname", "hosts", "resolv.conf"})
        if path == "/dev":
            names.update(posixpath.basename(device) for device in DEVICES)
        return sorted(name for name in names if name)

    def _generated(self, path: str) -> bytes | None:
        ctx = self._ctx
        if path == "/etc/hostname":
            return f"{ctx.hostname}\n".encode()
        if path == "/etc/hosts":
            return (
                "# Kubernetes-managed hosts file.\n"
                "127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\n"
                "fe00::1\tip6-allnodes\n"
                "fe00::2\tip6-allrouters\n"
                f"{ctx.pod_ip}\t{ctx.hostname}\n"
            ).encode()
        if path == "/etc/resolv.conf":
            return _resolv_conf(ctx).encode()
        return None


def _parent(path: str) -> str:
    return posixpath.dirname(path) if path != "/" else ""


def normalise(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def _resolv_conf(ctx: WorkloadContext) -> str:
    """What the kubelet writes for ``dnsPolicy: ClusterFirst``: search path and the DNS service."""
    domain = CLUSTER_DOMAIN
    lines = [f"search {ctx.namespace}.svc.{domain} svc.{domain} {domain}"]
    # Without a kube-dns Service in the lab there is no address to name: better none than a made-up one.
    with contextlib.suppress(LookupError):
        dns_ip = ctx.resolver.resolve(f"kube-dns.kube-system.svc.{domain}", ctx.namespace)
        lines.append(f"nameserver {dns_ip}")
    lines.append("options ndots:5")
    return "\n".join(lines) + "\n"


_registry: OrderedDict[tuple[str, str], ContainerFiles] = OrderedDict()
_registry_lock = threading.Lock()


def files_for(ctx: WorkloadContext) -> ContainerFiles:
    """The filesystem of ``ctx``'s container, created on first use."""
    key = (ctx.pod_uid, ctx.container_name)
    with _registry_lock:
        files = _registry.get(key)
        if files is None:
            files = ContainerFiles(ctx)
            _registry[key] = files
            while len(_registry) > MAX_CONTAINERS:
                _registry.popitem(last=False)
        else:
            _registry.move_to_end(key)
        return files
