"""Loopback address plan of one lab.

Linux routes all of 127.0.0.0/8 to ``lo``, so every 127.x.y.z is a distinct local address that a
socket can bind without configuration. A lab claims one /16 (127.B.0.0/16) for itself so that two
labs on the same machine never hand out the same pod, service or node address. The claim is an
``flock`` on a per-block file: the kernel drops it when the owning process dies, so a crashed lab
never leaks its block.

Inside the block:
- 127.B.0.1-127.B.0.250       node addresses
- 127.B.1.0-127.B.99.255      pod IPs (what other pods reach)
- 127.B.101.0-127.B.199.255   pod-private "localhost" addresses (same index as the pod IP)
- 127.B.200.0-127.B.249.255   service ClusterIPs
- 127.B.250.1-127.B.254.254   LoadBalancer ingress addresses
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: Blocks a lab may claim. 127.0/16 stays free for everything else on the machine.
_FIRST_BLOCK = 20
_LAST_BLOCK = 250

_POD_FIRST, _POD_LAST = 1, 99
_LOCAL_OFFSET = 100
_SERVICE_FIRST, _SERVICE_LAST = 200, 249
_LB_FIRST, _LB_LAST = 250, 254


def loopback_routes_all_of_127() -> bool:
    """True when binding an arbitrary 127.x address works (Linux: yes; macOS: only 127.0.0.1)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.37.41.43", 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _lock_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / f"meshcheck-lab-blocks-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class BlockClaim:
    """An exclusive claim on 127.B.0.0/16, held until ``release`` (or process exit)."""

    def __init__(self, block: int, handle: IO[str]) -> None:
        self.block = block
        self._handle: IO[str] | None = handle

    @classmethod
    def acquire(cls, preferred: int | None = None) -> BlockClaim:
        candidates = list(range(_FIRST_BLOCK, _LAST_BLOCK + 1))
        if preferred is not None:
            candidates.remove(preferred)
            candidates.insert(0, preferred)
        directory = _lock_dir()
        for block in candidates:
            handle = open(directory / f"{block}.lock", "w")  # noqa: SIM115 - held for the lab's life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return cls(block, handle)
        raise RuntimeError("every 127.x.0.0/16 block for labs is taken; stop a lab first")

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class _Pool:
    """Hands out addresses from an inclusive range of third octets, reusing released ones."""

    def __init__(self, block: int, first_octet: int, last_octet: int, *, skip_zero: bool) -> None:
        self._block = block
        self._iter = self._addresses(first_octet, last_octet, skip_zero)
        self._free: list[str] = []
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def _addresses(self, first: int, last: int, skip_zero: bool) -> Iterator[str]:
        for third in range(first, last + 1):
            for fourth in range(256):
                if fourth == 255 or (fourth == 0 and skip_zero):
                    continue
                yield f"127.{self._block}.{third}.{fourth}"

    def take(self) -> str:
        with self._lock:
            address = self._free.pop(0) if self._free else next(self._iter, "")
            if not address:
                raise RuntimeError("address pool exhausted")
            self._used.add(address)
            return address

    def reserve(self, address: str) -> bool:
        """Mark an address already in use (found in the store at start); False if taken."""
        with self._lock:
            if address in self._used:
                return False
            self._used.add(address)
            if address in self._free:
                self._free.remove(address)
            return True

    def give_back(self, address: str) -> None:
        with self._lock:
            if address in self._used:
                self._used.discard(address)
                self._free.append(address)


class AddressPlan:
    """The address pools of one lab, carved out of its claimed block."""

    def __init__(self, block: int) -> None:
        self.block = block
        self._pods = _Pool(block, _POD_FIRST, _POD_LAST, skip_zero=True)
        self._services = _Pool(block, _SERVICE_FIRST, _SERVICE_LAST, skip_zero=True)
        self._balancers = _Pool(block, _LB_FIRST, _LB_LAST, skip_zero=True)

    @property
    def service_cidr(self) -> str:
        return f"127.{self.block}.200.0/21"

    def node_ip(self, index: int) -> str:
        if not 0 <= index < 250:
            raise ValueError("a lab has at most 250 nodes")
        return f"127.{self.block}.0.{index + 1}"

    def pod_ip(self) -> str:
        return self._pods.take()

    def release_pod_ip(self, address: str) -> None:
        self._pods.give_back(address)

    def local_ip_for(self, pod_ip: str) -> str:
        """The pod's private address (its "localhost") paired with its pod IP."""
        octets = [int(part) for part in pod_ip.split(".")]
        return f"127.{octets[1]}.{octets[2] + _LOCAL_OFFSET}.{octets[3]}"

    def cluster_ip(self) -> str:
        return self._services.take()

    def reserve_cluster_ip(self, address: str) -> bool:
        return self.owns_service_ip(address) and self._services.reserve(address)

    def release_cluster_ip(self, address: str) -> None:
        self._services.give_back(address)

    def owns_service_ip(self, address: str) -> bool:
        try:
            parsed = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        octets = parsed.packed
        return octets[0] == 127 and octets[1] == self.block and _SERVICE_FIRST <= octets[2] <= _SERVICE_LAST

    def balancer_ip(self) -> str:
        return self._balancers.take()

    def release_balancer_ip(self, address: str) -> None:
        self._balancers.give_back(address)
