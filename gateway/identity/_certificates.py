"""Client certificates: chain verification against configured CAs, revocation, attributes.

Verification results are cached by the DER digest of the presented chain, so a
keep-alive connection pays for path building once; the validity window of the whole
chain and the freshness of the CA's CRLs are still checked against `now` every time.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.identity._errors import AuthenticationError
from gateway.identity._lru import LruCache
from gateway.identity._rfc3739 import (
    SUBJECT_DIRECTORY_ATTRIBUTES,
    DirectoryAttributesError,
    decode_directory_attributes,
)
from gateway.identity._settings import CertificateAuthoritySettings
from gateway.identity.countries import normalise_country
from gateway.identity.principal import Attribute, AttributeName, Credential

InvalidCodeHandler = Callable[[str, str, str], None]
"""Called with (attribute name, source, offending value) for a dropped country code."""

_DER = Encoding.DER
_T = TypeVar("_T", bound=x509.ExtensionType)
_SDA_OID = x509.ObjectIdentifier(SUBJECT_DIRECTORY_ATTRIBUTES)
# Reasons that do not depend on the time of the request, so a refusal can be cached.
_TIMELESS_REASONS = frozenset(
    {"cert.malformed", "cert.untrusted_ca", "cert.wrong_usage", "cert.revoked"}
)


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a verified client certificate says, and the window in which it may be used."""

    subject: str
    authority: CertificateAuthoritySettings
    organisations: tuple[str, ...]
    attributes: frozenset[Attribute]
    fingerprint: str
    thumbprint: str
    not_before: float
    not_after: float
    credentials: frozenset[Credential]

    @property
    def issuer(self) -> str:
        return self.authority.source


def _check_extended_key_usage(_policy: object, _certificate: object, value: object) -> None:
    # Client authentication is the only use we accept when a leaf restricts its usage.
    if isinstance(value, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in value:
        raise ValueError("extended key usage does not include client authentication")


class CertificateVerifier:
    """Verifies client certificate chains against a fixed set of CAs."""

    def __init__(
        self,
        authorities: Sequence[CertificateAuthoritySettings],
        *,
        cache_size: int,
        on_invalid_code: InvalidCodeHandler,
    ) -> None:
        self._authorities = tuple((a, Store(list(a.certificates))) for a in authorities)
        self._on_invalid_code = on_invalid_code
        self._by_text: LruCache[str, CertificateIdentity] = LruCache(cache_size)
        self._by_digest: LruCache[bytes, CertificateIdentity | str] = LruCache(cache_size)
        self._ee_policy = (
            ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _check_extended_key_usage)
        )
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca()

    def verify_pem(self, chain: Sequence[str], now: float) -> CertificateIdentity:
        """Verify a leaf-first chain of PEM certificates at `now`."""
        if not chain:
            raise AuthenticationError("cert.malformed")
        key = chain[0] if len(chain) == 1 else "\n".join(chain)
        identity = self._by_text.get(key)
        if identity is None:
            ders = [_pem_to_der(text) for text in chain]
            identity = self.verify_der(ders, now)
            self._by_text.put(key, identity)
        self.check_time(identity, now)
        return identity

    def verify_der(self, chain: Sequence[bytes], now: float) -> CertificateIdentity:
        """Verify a leaf-first chain of DER certificates at `now`."""
        digest = hashlib.sha256(b"".join(chain)).digest()
        cached = self._by_digest.get(digest)
        if isinstance(cached, str):
            raise AuthenticationError(cached)
        if cached is None:
            try:
                cached = self._verify_uncached(chain, now)
            except AuthenticationError as exc:
                if exc.reason in _TIMELESS_REASONS:
                    self._by_digest.put(digest, exc.reason)
                raise
            self._by_digest.put(digest, cached)
        self.check_time(cached, now)
        return cached

    @staticmethod
    def check_time(identity: CertificateIdentity, now: float) -> None:
        """Refuse a verified `identity` at `now` if it is outside its validity window or
        its CA's CRLs are stale (checked on every request, cached or not)."""
        if now < identity.not_before:
            raise AuthenticationError("cert.not_yet_valid")
        if now > identity.not_after:
            raise AuthenticationError("cert.expired")
        next_update = identity.authority.crl_next_update
        if next_update is not None and now > next_update.timestamp():
            raise AuthenticationError("cert.revocation_unavailable")

    def _verify_uncached(self, chain: Sequence[bytes], now: float) -> CertificateIdentity:
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError as exc:
            raise AuthenticationError("cert.malformed") from exc
        leaf, intermediates = certificates[0], certificates[1:]
        try:
            if now < leaf.not_valid_before_utc.timestamp():
                raise AuthenticationError("cert.not_yet_valid")
            if now > leaf.not_valid_after_utc.timestamp():
                raise AuthenticationError("cert.expired")
            usage = _extension(leaf, x509.ExtendedKeyUsage)
            if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
                raise AuthenticationError("cert.wrong_usage")
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise AuthenticationError("cert.malformed") from exc
        at = datetime.fromtimestamp(now, UTC)
        for authority, store in self._authorities:
            verifier = (
                PolicyBuilder()
                .store(store)
                .time(at)
                .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
                .build_client_verifier()
            )
            try:
                verified = verifier.verify(leaf, intermediates)
            except VerificationError:
                continue
            return self._identity(leaf, verified.chain, authority)
        raise AuthenticationError("cert.untrusted_ca")

    def _identity(
        self,
        leaf: x509.Certificate,
        chain: Sequence[x509.Certificate],
        authority: CertificateAuthoritySettings,
    ) -> CertificateIdentity:
        for certificate in chain[:-1]:
            if (certificate.issuer.public_bytes(), certificate.serial_number) in authority.revoked:
                raise AuthenticationError("cert.revoked")
        try:
            return self._read_attributes(leaf, chain, authority)
        except (ValueError, DirectoryAttributesError, x509.DuplicateExtension) as exc:
            raise AuthenticationError("cert.malformed") from exc

    def _read_attributes(
        self,
        leaf: x509.Certificate,
        chain: Sequence[x509.Certificate],
        authority: CertificateAuthoritySettings,
    ) -> CertificateIdentity:
        source = authority.source
        names = leaf.subject
        common_names = _name_values(names, NameOID.COMMON_NAME)
        subject = common_names[0] if common_names else _first_alternative_name(leaf)
        if not subject:
            raise AuthenticationError("cert.missing_subject")
        organisations = tuple(_name_values(names, NameOID.ORGANIZATION_NAME))
        attributes: set[Attribute] = {Attribute("organisation", o, source) for o in organisations}
        attributes.update(
            Attribute("role", unit, source)
            for unit in _name_values(names, NameOID.ORGANIZATIONAL_UNIT_NAME)
        )
        directory = _extension_by_oid(leaf, _SDA_OID)
        if directory is not None:
            decoded = decode_directory_attributes(directory)
            self._add_countries(attributes, "nationality", decoded.citizenships, source)
            self._add_countries(attributes, "residence", decoded.residences, source)
        der = leaf.public_bytes(_DER)
        digest = hashlib.sha256(der).digest()
        return CertificateIdentity(
            subject=subject,
            authority=authority,
            organisations=organisations,
            attributes=frozenset(attributes),
            fingerprint=digest.hex(),
            thumbprint=base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"),
            not_before=max(c.not_valid_before_utc for c in chain).timestamp(),
            not_after=min(c.not_valid_after_utc for c in chain).timestamp(),
            credentials=frozenset({Credential(source, subject)}),
        )

    def _add_countries(
        self, attributes: set[Attribute], name: AttributeName, codes: Sequence[str], source: str
    ) -> None:
        for code in codes:
            normalised = normalise_country(code)
            if normalised is None:
                self._on_invalid_code(name, source, code)
            else:
                attributes.add(Attribute(name, normalised, source))


def _pem_to_der(text: str) -> bytes:
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii")).public_bytes(_DER)
    except (ValueError, UnicodeEncodeError) as exc:
        raise AuthenticationError("cert.malformed") from exc


def _name_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid) if a.value]


def _first_alternative_name(leaf: x509.Certificate) -> str | None:
    names = _extension(leaf, x509.SubjectAlternativeName)
    if names is None:
        return None
    for general_name in names:
        if isinstance(
            general_name, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier
        ):
            return str(general_name.value)
        if isinstance(general_name, x509.IPAddress):
            return str(general_name.value)
    return None


def _extension(leaf: x509.Certificate, kind: type[_T]) -> _T | None:
    try:
        return leaf.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _extension_by_oid(leaf: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = leaf.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value
    return value.public_bytes()
