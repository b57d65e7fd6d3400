from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from pytest_meshcheck.lab.mesh.ca import (
    CertificateRotator,
    IssuedCertificate,
    MeshCA,
    build_csr,
    certificate_spiffe_ids,
    parse_spiffe_id,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


def test_workload_cert_carries_spiffe_uri_and_verifies_against_root() -> None:
    ca = MeshCA()
    issued = ca.issue_workload("bookinfo", "bookinfo-reviews")
    cert = x509.load_pem_x509_certificate(issued.certificate_pem)
    assert certificate_spiffe_ids(cert) == ["spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"]
    assert issued.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    root_key = ca.root_cert.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca.root_cert)
    other = MeshCA()
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(other.root_cert)


def test_root_configmap_and_secret_roundtrip() -> None:
    ca = MeshCA()
    data = ca.root_configmap_data()
    assert data["root-cert.pem"].startswith("-----BEGIN CERTIFICATE-----")
    reloaded = MeshCA.from_secret_data(ca.secret_data())
    assert reloaded.root_pem == ca.root_pem
    issued = reloaded.issue_workload("default", "sleep")
    x509.load_pem_x509_certificate(issued.certificate_pem).verify_directly_issued_by(ca.root_cert)


def test_csr_for_another_identity_is_refused() -> None:
    ca = MeshCA()
    _, csr = build_csr("bookinfo", "admin")
    with pytest.raises(PermissionError):
        ca.sign_csr(csr, namespace="bookinfo", service_account="bookinfo-ratings")


def test_lifetime_is_configurable_and_short() -> None:
    clock = FakeClock()
    ca = MeshCA(workload_ttl=datetime.timedelta(minutes=10), clock=clock)
    issued = ca.issue_workload("ns", "sa")
    assert issued.not_after - clock.now == datetime.timedelta(minutes=10)


def test_rotator_renews_in_grace_period_only() -> None:
    clock = FakeClock()
    ca = MeshCA(workload_ttl=datetime.timedelta(minutes=10), clock=clock)
    rotations: list[IssuedCertificate] = []
    rotator = CertificateRotator(
        lambda: ca.issue_workload("ns", "sa"), clock=clock, on_rotate=rotations.append
    )
    assert rotator.refresh_if_due() is True
    first = rotator.current
    assert first is not None
    clock.now += datetime.timedelta(minutes=4)
    assert rotator.refresh_if_due() is False
    assert rotator.current is first
    assert rotator.seconds_until_due() == pytest.approx(57.5, abs=0.5)
    clock.now += datetime.timedelta(minutes=1, seconds=10)
    assert rotator.refresh_if_due() is True
    assert rotator.current is not first
    assert len(rotations) == 2
    assert rotations[1].not_after > first.not_after


def test_parse_spiffe_id() -> None:
    assert parse_spiffe_id("spiffe://cluster.local/ns/a/sa/b") == ("cluster.local", "a", "b")
    assert parse_spiffe_id("spiffe://cluster.local/ns/a") is None
    assert parse_spiffe_id("https://x") is None
