"""A small certificate authority for development and demos: CA, client and server certificates.

Client certificates carry the RFC 3739 Subject Directory Attributes extension
(countryOfCitizenship, countryOfResidence) encoded with pyasn1, so what this module
issues is exactly what the gateway reads back. Keys are EC P-256.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.identity._errors import PkiError
from gateway.identity._rfc3739 import SUBJECT_DIRECTORY_ATTRIBUTES, encode_directory_attributes
from gateway.identity.countries import normalise_country

__all__ = ["init_ca", "issue_client", "issue_server"]

CA_CERTIFICATE = "ca.pem"
CA_PRIVATE_KEY = "ca-key.pem"


# Client and server certificates sign (TLS handshakes), nothing else.
_END_ENTITY_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def init_ca(
    directory: Path, name: str, days: int = 3650, not_before: datetime | None = None
) -> Path:
    """Create a self-signed CA in `directory` (ca.pem, ca-key.pem mode 0600); return ca.pem.

    Valid from `not_before` (default: five minutes ago) for `days` days.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = not_before + timedelta(minutes=5) if not_before is not None else datetime.now(UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / CA_PRIVATE_KEY, key)
    path = directory / CA_CERTIFICATE
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def issue_client(
    ca_directory: Path,
    out_prefix: Path,
    *,
    common_name: str,
    organisation: str,
    units: Sequence[str] = (),
    citizenships: Sequence[str] = (),
    residences: Sequence[str] = (),
    days: int = 365,
    not_before: datetime | None = None,
) -> tuple[Path, Path]:
    """Issue a client certificate; return (certificate PEM path, key PEM path).

    Countries may be given as alpha-2, alpha-3 or ICAO codes; they are written as alpha-2.
    """
    attributes = [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit) for unit in units]
    extensions: list[x509.ExtensionType] = [
        _END_ENTITY_KEY_USAGE,
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
    ]
    citizenship_codes = _countries(citizenships)
    residence_codes = _countries(residences)
    if citizenship_codes or residence_codes:
        extensions.append(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(SUBJECT_DIRECTORY_ATTRIBUTES),
                encode_directory_attributes(citizenship_codes, residence_codes),
            )
        )
    return _issue(ca_directory, out_prefix, x509.Name(attributes), extensions, days, not_before)


def issue_server(ca_directory: Path, out_prefix: Path, hosts: list[str]) -> tuple[Path, Path]:
    """Issue a TLS server certificate for `hosts` (DNS names or IP addresses)."""
    if not hosts:
        raise PkiError("a server certificate needs at least one host")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    extensions: list[x509.ExtensionType] = [
        x509.SubjectAlternativeName(names),
        _END_ENTITY_KEY_USAGE,
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return _issue(ca_directory, out_prefix, subject, extensions, 825, None)


def _countries(codes: Iterable[str]) -> list[str]:
    result = []
    for code in codes:
        normalised = normalise_country(code)
        if normalised is None:
            raise PkiError(f"not an ISO 3166-1 or ICAO country code: {code!r}")
        result.append(normalised)
    return result


def _issue(
    ca_directory: Path,
    out_prefix: Path,
    subject: x509.Name,
    extensions: list[x509.ExtensionType],
    days: int,
    not_before: datetime | None,
) -> tuple[Path, Path]:
    ca_certificate, ca_key = _load_ca(ca_directory)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before if not_before is not None else datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for extension in extensions:
        critical = isinstance(extension, x509.KeyUsage)
        builder = builder.add_extension(extension, critical=critical)
    certificate = builder.sign(ca_key, hashes.SHA256())
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    certificate_path = out_prefix.with_name(out_prefix.name + ".pem")
    key_path = out_prefix.with_name(out_prefix.name + "-key.pem")
    _write_key(key_path, key)
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate_path, key_path


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    certificate_path = directory / CA_CERTIFICATE
    key_path = directory / CA_PRIVATE_KEY
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError("cannot load the CA certificate and key", str(directory)) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("the CA key is not an EC key", str(key_path))
    return certificate, key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create with 0600 from the start, so the key is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)
