"""The two ways a lab container opens outbound connections (see ``lab/contract.py``).

``PlainDialer`` connects straight to the resolved address, from the pod's IP so the peer sees the
right client address. ``CaptureDialer`` is what iptables' OUTPUT chain does in an injected pod:
every outbound connection lands on the sidecar's outbound listener, which learns the original
destination from a PROXY protocol v1 header (the lab's SO_ORIGINAL_DST). Connections to the pod
itself are not captured, as istio-iptables leaves loopback traffic alone.
"""

from __future__ import annotations

import contextlib
import socket

from pytest_meshcheck.lab.contract import SIDECAR_OUTBOUND_PORT, Resolver


def _open(target: tuple[str, int], source_ip: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.bind((source_ip, 0))
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


class PlainDialer:
    def __init__(self, resolver: Resolver, *, namespace: str, source_ip: str) -> None:
        self._resolver = resolver
        self._namespace = namespace
        self._source_ip = source_ip

    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
        try:
            address = self._resolver.resolve(host, self._namespace)
        except LookupError as exc:
            raise socket.gaierror(socket.EAI_NONAME, f"Could not resolve host: {host}") from exc
        return _open((address, port), self._source_ip, timeout)


class CaptureDialer:
    def __init__(self, resolver: Resolver, *, namespace: str, pod_ip: str, local_ip: str) -> None:
        self._resolver = resolver
        self._namespace = namespace
        self._pod_ip = pod_ip
        self._local_ip = local_ip

    def connect(self, host: str, port: int, *, timeout: float = 10.0) -> socket.socket:
        try:
            address = self._resolver.resolve(host, self._namespace)
        except LookupError as exc:
            raise socket.gaierror(socket.EAI_NONAME, f"Could not resolve host: {host}") from exc
        if address in (self._local_ip, self._pod_ip) or address.startswith("127.0."):
            return _open(
                (address, port), self._local_ip if address == self._local_ip else self._pod_ip, timeout
            )
        sock = _open((self._pod_ip, SIDECAR_OUTBOUND_PORT), self._pod_ip, timeout)
        source_port = sock.getsockname()[1]
        header = f"PROXY TCP4 {self._pod_ip} {address} {source_port} {port}\r\n"
        try:
            sock.sendall(header.encode("ascii"))
        except OSError:
            with contextlib.suppress(OSError):
                sock.close()
            raise
        return sock
