"""TLS contexts built from a workload certificate, as Envoy configures them for Istio mTLS.

Both directions require a peer certificate chained to the mesh root; the peer's identity is its
SPIFFE URI SAN. Python's ssl module loads keys from files only, so each certificate is written to a
private temporary directory owned by the proxy and removed with it.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading

from cryptography import x509

from pytest_meshcheck.lab.mesh.ca import IssuedCertificate, certificate_spiffe_ids, der_sha256_hex

#: The ALPN Istio's sidecars offer on mesh mTLS.
MESH_ALPN = ["istio-peer-exchange", "istio", "http/1.1"]


class WorkloadTLS:
    """The current certificate's server and client contexts; swapped atomically on rotation."""

    def __init__(self) -> None:
        self._dir = ""
        self._lock = threading.Lock()
        self._generation = 0
        self.certificate: IssuedCertificate | None = None
        self.server_context: ssl.SSLContext | None = None
        self.client_context: ssl.SSLContext | None = None

    def install(self, issued: IssuedCertificate) -> None:
        with self._lock:
            if not self._dir:
                self._dir = tempfile.mkdtemp(prefix="meshcheck-proxy-")
            self._generation += 1
            cert_path = os.path.join(self._dir, f"cert-{self._generation}.pem")
            key_path = os.path.join(self._dir, f"key-{self._generation}.pem")
            with open(cert_path, "wb") as handle:
                handle.write(issued.certificate_pem)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(issued.private_key_pem)
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.minimum_version = ssl.TLSVersion.TLSv1_2
            server.verify_mode = ssl.CERT_REQUIRED
            server.load_verify_locations(cadata=issued.root_pem.decode())
            server.load_cert_chain(cert_path, key_path)
            server.set_alpn_protocols(MESH_ALPN)
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.minimum_version = ssl.TLSVersion.TLSv1_2
            client.check_hostname = False  # Istio verifies SPIFFE SANs, not host names
            client.verify_mode = ssl.CERT_REQUIRED
            client.load_verify_locations(cadata=issued.root_pem.decode())
            client.load_cert_chain(cert_path, key_path)
            client.set_alpn_protocols(MESH_ALPN)
            for path in (cert_path, key_path):
                os.unlink(path)
            self.certificate = issued
            self.server_context = server
            self.client_context = client

    @property
    def spiffe_id(self) -> str:
        return self.certificate.spiffe_id if self.certificate else ""

    def close(self) -> None:
        with self._lock:
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = ""


def peer_identity(sock: ssl.SSLSocket) -> tuple[str, str]:
    """``(spiffe_uri, sha256_hex_of_der)`` of the peer's certificate ("" when none)."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        return "", ""
    cert = x509.load_der_x509_certificate(der)
    ids = certificate_spiffe_ids(cert)
    return (ids[0] if ids else ""), der_sha256_hex(der)


def server_context_from_pem(
    cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes | None = None
) -> ssl.SSLContext:
    """A TLS server context from PEM data (a gateway's ``credentialName`` secret); with a client CA
    it requires client certificates (Istio's ``MUTUAL`` gateway mode)."""
    directory = tempfile.mkdtemp(prefix="meshcheck-gateway-")
    try:
        cert_path = os.path.join(directory, "tls.crt")
        key_path = os.path.join(directory, "tls.key")
        with open(cert_path, "wb") as handle:
            handle.write(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if client_ca_pem:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca_pem.decode())
    return context
