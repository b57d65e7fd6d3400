"""The mesh's certificate authority, as istiod's self-signed CA runs it.

Istiod keeps one root (``istio-ca-secret``), publishes its certificate to every namespace as the
``istio-ca-root-cert`` ConfigMap (key ``root-cert.pem``) and signs short-lived workload certificates
whose only identity is a SPIFFE URI SAN, ``spiffe://<trust domain>/ns/<ns>/sa/<service account>``.
Proxies present them for mutual TLS and renew them well before they expire. The lab keeps the same
shape so that the identities seen in X-Forwarded-Client-Cert, in ``source_principal`` and in Kiali are
the ones a real mesh shows.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pytest_meshcheck.lab.pki import new_private_key, private_key_pem, self_signed_ca

#: Istio's default trust domain.
DEFAULT_TRUST_DOMAIN = "cluster.local"
#: Istio's default workload certificate lifetime (``DEFAULT_WORKLOAD_CERT_TTL``) is 24h; the lab
#: uses the same default and lets tests shorten it.
DEFAULT_WORKLOAD_TTL = datetime.timedelta(hours=24)
#: Istio's self-signed root lives ten years.
DEFAULT_ROOT_TTL = datetime.timedelta(days=3650)
#: pilot-agent rotates at half of the lifetime (``SECRET_GRACE_PERIOD_RATIO`` 0.5).
DEFAULT_GRACE_RATIO = 0.5
#: Certificates are valid from slightly before issuance so peers with a lagging clock accept them;
#: never more than a tenth of the lifetime, so short-lived test certificates still rotate on time.
CLOCK_SKEW_ALLOWANCE = datetime.timedelta(seconds=5)
#: The organisation istiod writes into its self-signed root.
ROOT_ORGANIZATION = "cluster.local"

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def spiffe_id(namespace: str, service_account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def parse_spiffe_id(uri: str) -> tuple[str, str, str] | None:
    """``(trust_domain, namespace, service_account)`` of a workload SPIFFE ID, or None."""
    prefix = "spiffe://"
    if not uri.startswith(prefix):
        return None
    parts = uri[len(prefix) :].split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        return None
    return parts[0], parts[2], parts[4]


def certificate_spiffe_ids(cert: x509.Certificate) -> list[str]:
    """The SPIFFE URIs in a certificate's subjectAltName (empty when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("spiffe://")
    ]


def der_sha256_hex(der: bytes) -> str:
    """Envoy's XFCC ``Hash``: hex SHA-256 of the peer certificate's DER encoding."""
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, kw_only=True)
class IssuedCertificate:
    """A workload's key pair and chain, PEM encoded, as pilot-agent writes them to the proxy."""

    private_key_pem: bytes
    certificate_pem: bytes
    #: The signing chain up to, and including, the root.
    chain_pem: bytes
    root_pem: bytes
    spiffe_id: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def lifetime(self) -> datetime.timedelta:
        return self.not_after - self.not_before

    def renew_at(self, grace_ratio: float = DEFAULT_GRACE_RATIO) -> datetime.datetime:
        """When pilot-agent asks for a new certificate: after ``1 - grace_ratio`` of the lifetime."""
        return self.not_before + self.lifetime * (1.0 - grace_ratio)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def build_csr(
    namespace: str, service_account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> tuple[bytes, bytes]:
    """A fresh key and a CSR for the workload identity: ``(private_key_pem, csr_pem)``.

    The key never leaves the proxy, as with pilot-agent's CSR flow to istiod."""
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id(namespace, service_account, trust_domain))]
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


class MeshCA:
    """A self-signed root that signs workload and serving certificates."""

    def __init__(
        self,
        *,
        root_key: ec.EllipticCurvePrivateKey | None = None,
        root_cert: x509.Certificate | None = None,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        workload_ttl: datetime.timedelta = DEFAULT_WORKLOAD_TTL,
        clock: Clock = utc_now,
    ) -> None:
        self.trust_domain = trust_domain
        self.workload_ttl = workload_ttl
        self._clock = clock
        if (root_key is None) != (root_cert is None):
            raise ValueError("root_key and root_cert come together")
        if root_key is None or root_cert is None:
            now = self._clock()
            root_key, root_cert = self_signed_ca(
                x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ROOT_ORGANIZATION)]),
                now - datetime.timedelta(minutes=1),
                now + DEFAULT_ROOT_TTL,
            )
        self._root_key = root_key
        self.root_cert = root_cert
        self._serial_lock = threading.Lock()

    # --- the root --------------------------------------------------------------------------
    @property
    def root_pem(self) -> bytes:
        return _cert_pem(self.root_cert)

    def secret_data(self) -> dict[str, bytes]:
        """The PEM files istiod keeps in its ``istio-ca-secret`` (keys as istiod names them)."""
        return {"ca-cert.pem": self.root_pem, "ca-key.pem": private_key_pem(self._root_key)}

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes], **kwargs: object) -> MeshCA:
        """Reload a CA from ``secret_data`` (a restarted istiod keeps its root)."""
        key = serialization.load_pem_private_key(data["ca-key.pem"], password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("istio-ca-secret holds an unsupported key type")
        cert = x509.load_pem_x509_certificate(data["ca-cert.pem"])
        return cls(root_key=key, root_cert=cert, **kwargs)  # type: ignore[arg-type]

    def root_configmap_data(self) -> dict[str, str]:
        """The ``data`` of the ``istio-ca-root-cert`` ConfigMap istiod writes into each namespace."""
        return {"root-cert.pem": self.root_pem.decode()}

    # --- issuing -------------------------------------------------------------------------------
    def _leaf(
        self,
        public_key: ec.EllipticCurvePublicKey,
        san: list[x509.GeneralName],
        ttl: datetime.timedelta,
        *,
        server_only: bool,
    ) -> x509.Certificate:
        now = self._clock()
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if not server_only:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.root_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - min(CLOCK_SKEW_ALLOWANCE, ttl / 10))
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._root_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(san), critical=True)
            .sign(self._root_key, hashes.SHA256())
        )

    def sign_csr(
        self,
        csr_pem: bytes,
        *,
        namespace: str,
        service_account: str,
        ttl: datetime.timedelta | None = None,
    ) -> x509.Certificate:
        """Sign a proxy's CSR for the identity istiod authenticated, not the one the CSR asks for:
        a CSR naming another identity is refused, as istiod's CA server refuses it."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is invalid")
        wanted = spiffe_id(namespace, service_account, self.trust_domain)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            asked = san.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            asked = []
        if asked and asked != [wanted]:
            raise PermissionError(f"CSR asks for {asked}, caller is {wanted}")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("only EC P-256 keys are accepted")
        return self._leaf(
            public_key, [x509.UniformResourceIdentifier(wanted)], ttl or self.workload_ttl, server_only=False
        )

    def issue_workload(
        self, namespace: str, service_account: str, *, ttl: datetime.timedelta | None = None
    ) -> IssuedCertificate:
        """Key and certificate for a workload identity in one step (key generated here)."""
        key_pem, csr_pem = build_csr(namespace, service_account, self.trust_domain)
        cert = self.sign_csr(csr_pem, namespace=namespace, service_account=service_account, ttl=ttl)
        return self.bundle(key_pem, cert)

    def issue_serving(
        self, dns_names: list[str], *, ttl: datetime.timedelta | None = None
    ) -> tuple[bytes, bytes]:
        """``(key_pem, cert_pem)`` of a serving certificate, e.g. istiod's for its webhook."""
        key = new_private_key()
        cert = self._leaf(
            key.public_key(),
            [x509.DNSName(name) for name in dns_names],
            ttl or DEFAULT_ROOT_TTL / 10,
            server_only=True,
        )
        return private_key_pem(key), _cert_pem(cert)

    def bundle(self, key_pem: bytes, cert: x509.Certificate) -> IssuedCertificate:
        return IssuedCertificate(
            private_key_pem=key_pem,
            certificate_pem=_cert_pem(cert),
            chain_pem=self.root_pem,
            root_pem=self.root_pem,
            spiffe_id=certificate_spiffe_ids(cert)[0],
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def issued_from_pem(key_pem: bytes, cert_pem: bytes, root_pem: bytes) -> IssuedCertificate:
    """Rebuild an ``IssuedCertificate`` from what a CA answered over the wire."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ids = certificate_spiffe_ids(cert)
    if not ids:
        raise ValueError("workload certificate has no SPIFFE URI")
    return IssuedCertificate(
        private_key_pem=key_pem,
        certificate_pem=cert_pem,
        chain_pem=root_pem,
        root_pem=root_pem,
        spiffe_id=ids[0],
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


class CertificateRotator:
    """Keeps a workload certificate fresh the way pilot-agent's secret manager does: fetch one up
    front, then fetch again once the grace period starts, whatever the lifetime is."""

    def __init__(
        self,
        fetch: Callable[[], IssuedCertificate],
        *,
        grace_ratio: float = DEFAULT_GRACE_RATIO,
        clock: Clock = utc_now,
        on_rotate: Callable[[IssuedCertificate], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._grace_ratio = grace_ratio
        self._clock = clock
        self._on_rotate = on_rotate
        self._current: IssuedCertificate | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> IssuedCertificate | None:
        return self._current

    def refresh_if_due(self) -> bool:
        """Fetch a new certificate when none is held or the held one is in its grace period.
        Returns True when it rotated. Errors propagate: the caller keeps the old certificate."""
        with self._lock:
            held = self._current
            if held is not None and self._clock() < held.renew_at(self._grace_ratio):
                return False
            fresh = self._fetch()
            self._current = fresh
        if self._on_rotate is not None:
            self._on_rotate(fresh)
        return True

    def seconds_until_due(self) -> float:
        held = self._current
        if held is None:
            return 0.0
        return max(0.0, (held.renew_at(self._grace_ratio) - self._clock()).total_seconds())
