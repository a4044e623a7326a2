"""Approvers certified by an approver CA: the CA vouches for the key and its organisation."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.policy import PolicyLoadError, load_policy

from .conftest import sign_file

START = datetime(2026, 1, 1, tzinfo=UTC)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation is not None:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def make_ca(
    common_name: str = "Lab Approver CA", *, ca: bool = True
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, "Example AI Labs"))
        .issuer_name(_name(common_name, "Example AI Labs"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    key: Ed25519PrivateKey,
    organisation: str,
    *,
    days: int = 3000,
) -> x509.Certificate:
    certificate, ca_key = ca
    return (
        x509.CertificateBuilder()
        .subject_name(_name("approver", organisation))
        .issuer_name(certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )


def pem(certificate: x509.Certificate, indent: int) -> str:
    text = certificate.public_bytes(Encoding.PEM).decode()
    return textwrap.indent(text, " " * indent)


def write_certified(
    directory: Path,
    authority: x509.Certificate,
    approvers: dict[str, x509.Certificate],
) -> Path:
    lines = ["approver_authorities:", "  - id: lab-approvers", "    certificate: |"]
    lines.append(pem(authority, 6).rstrip("\n"))
    lines.append("approvers:")
    for key_id, certificate in approvers.items():
        lines += [f"  - id: {key_id}", "    certificate: |", pem(certificate, 6).rstrip("\n")]
    path = directory / "approvers-certified.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def unsigned_grants(directory: Path) -> Path:
    grants = directory / "grants.yaml"
    text = grants.read_text()
    grants.write_text(text[: text.index("    signatures:")])
    return grants


def test_a_certified_approver_counts_with_the_certificate_organisation(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    ca = make_ca()
    key = Ed25519PrivateKey.generate()
    write_certified(policy_dir, ca[0], {"certified-1": issue(ca, key, "Example AI Labs")})
    grants = unsigned_grants(policy_dir)
    sign_file(grants, {**approver_keys, "certified-1": key}, ("certified-1", "lab-approver-1"))
    policy = load_policy(policy_dir)
    assert policy.grants[0].approvals == ("certified-1", "lab-approver-1")
    approver = policy.approvers["certified-1"]
    assert (approver.organisation, approver.authority) == ("Example AI Labs", "lab-approvers")


def test_a_certificate_of_the_grantee_organisation_does_not_count(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    ca = make_ca()
    key = Ed25519PrivateKey.generate()
    write_certified(policy_dir, ca[0], {"certified-1": issue(ca, key, "US CAISI")})
    grants = unsigned_grants(policy_dir)
    sign_file(grants, {**approver_keys, "certified-1": key}, ("certified-1", "lab-approver-1"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert "key certified-1: belongs to the grantee organisation US CAISI" in caught.value.message


def test_a_certificate_that_ends_inside_the_grant_window_does_not_count(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    ca = make_ca()
    key = Ed25519PrivateKey.generate()
    # Valid until 2026-12-27: the example grant runs until 2027-01-08.
    short = issue(ca, key, "Example AI Labs", days=360)
    write_certified(policy_dir, ca[0], {"certified-1": short})
    grants = unsigned_grants(policy_dir)
    sign_file(grants, {**approver_keys, "certified-1": key}, ("certified-1", "lab-approver-1"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert "certificate is not valid for the whole grant window" in caught.value.message


def test_a_certificate_from_another_ca_is_refused_at_its_line(policy_dir: Path) -> None:
    other = make_ca("Someone Else CA")
    certificate = issue(other, Ed25519PrivateKey.generate(), "Example AI Labs")
    path = write_certified(policy_dir, make_ca()[0], {"certified-1": certificate})
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    line = path.read_text().splitlines().index("  - id: certified-1") + 2
    assert (caught.value.key, caught.value.line) == ("approvers[0].certificate", line)
    assert "is not issued by any of approver_authorities" in caught.value.message


def test_an_approver_authority_must_be_a_ca(policy_dir: Path) -> None:
    not_ca = make_ca(ca=False)
    write_certified(policy_dir, not_ca[0], {})
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert caught.value.key == "approver_authorities[0].certificate"
    assert "is not a CA certificate" in caught.value.message


def test_a_certificate_for_a_key_other_than_ed25519_is_refused(policy_dir: Path) -> None:
    ca = make_ca()
    certificate, ca_key = ca
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("approver", "Example AI Labs"))
        .issuer_name(certificate.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    write_certified(policy_dir, certificate, {"certified-1": leaf})
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert "must certify an Ed25519 key" in caught.value.message
