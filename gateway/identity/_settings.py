"""The `identity:` and `tls:` settings, parsed once with errors that name file and key."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.config import ConfigError, Section

# Asymmetric algorithms only: `none` and HMAC algorithms are never accepted, because a
# verifier holding only public keys must never treat one as a shared secret.
SUPPORTED_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CLAIM_NAMES = ("subject", "organisation", "roles", "nationalities", "residences")


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Dotted claim paths for each Principal field; None leaves the field unmapped."""

    subject: str = "sub"
    organisation: str | None = None
    roles: str | None = None
    nationalities: str | None = None
    residences: str | None = None


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """One trusted OIDC/JWT issuer; attributes from it carry source ``oidc:<id>``."""

    id: str
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None
    discovery: str | None
    algorithms: frozenset[str]
    jwks_ttl_seconds: float
    refresh_interval_seconds: float
    required_claims: tuple[str, ...]
    claims: ClaimMapping

    @property
    def source(self) -> str:
        return f"oidc:{self.id}"


@dataclass(frozen=True, slots=True)
class CertificateAuthoritySettings:
    """One trusted client-certificate CA; attributes from it carry source ``ca:<id>``.

    `revoked` holds (issuer name DER, serial number) pairs from the CRL files, and
    `crl_next_update` the earliest `next_update` among them (None: no CRL or no date).
    """

    id: str
    bundle: Path
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[Path, ...]
    revoked: frozenset[tuple[bytes, int]]
    crl_next_update: datetime | None

    @property
    def source(self) -> str:
        return f"ca:{self.id}"


@dataclass(frozen=True, slots=True)
class ForwardedCertificateSettings:
    """A client certificate forwarded by a TLS-terminating proxy in a header."""

    header: bytes
    format: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    certificate_authorities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """Everything the Authenticator needs, read from the `identity:` section."""

    clock_skew_seconds: float = 60.0
    token_cache_size: int = 10000
    certificate_cache_size: int = 1024
    max_token_bytes: int = 16384
    issuers: tuple[IssuerSettings, ...] = ()
    certificate_authorities: tuple[CertificateAuthoritySettings, ...] = ()
    forwarded_certificate: ForwardedCertificateSettings | None = None

    def has_sources(self) -> bool:
        """True if at least one issuer or certificate authority is configured."""
        return bool(self.issuers or self.certificate_authorities)

    @classmethod
    def from_section(cls, section: Section) -> IdentitySettings:
        """Parse and check the `identity:` section; CA bundles and CRLs are loaded here."""
        if section.has("combine"):
            # Said precisely, so that an upgrade does not end at "unknown key".
            section.fail(
                "combine",
                "was removed: a token and a certificate that disagree on the subject or on "
                "a trusted organisation are refused by the policy (identity.conflict); "
                "relax that with the policy's settings.credential_conflicts",
            )
        section.reject_unknown(
            "clock_skew_seconds",
            "token_cache_size",
            "certificate_cache_size",
            "certificate_authorities",
            "forwarded_certificate",
            "issuers",
        )
        authorities = tuple(_authority(s) for s in section.sections("certificate_authorities"))
        _unique(section, "certificate_authorities", [a.id for a in authorities])
        issuers = tuple(_issuer(s) for s in section.sections("issuers"))
        _unique(section, "issuers", [i.id for i in issuers])
        _unique(section, "issuers", [i.issuer for i in issuers], what="issuer")
        forwarded = None
        if section.has("forwarded_certificate"):
            forwarded = _forwarded(
                section.section("forwarded_certificate"), [a.id for a in authorities]
            )
        return cls(
            clock_skew_seconds=section.number("clock_skew_seconds", 60.0, minimum=0),
            token_cache_size=section.integer("token_cache_size", 10000, minimum=0),
            certificate_cache_size=section.integer("certificate_cache_size", 1024, minimum=0),
            issuers=issuers,
            certificate_authorities=authorities,
            forwarded_certificate=forwarded,
        )


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The `tls:` section: the gateway's own certificate and whether it asks for clients'.

    An empty section means plain HTTP (`enabled` is False). Each refused handshake is
    recorded (`tls_failure`), at most `failure_records_per_peer` per peer address and
    `failure_records_overall` in all per minute; the rest are counted in one summary
    record per peer and minute.
    """

    certificate: Path | None = None
    private_key: Path | None = None
    client_certificates: str = "none"
    minimum_version: str = "1.2"
    handshake_timeout_seconds: float = 60.0
    failure_records_per_peer: int = 10
    failure_records_overall: int = 600
    file: str = "settings"

    @property
    def enabled(self) -> bool:
        return self.certificate is not None

    @classmethod
    def from_section(cls, section: Section) -> TlsSettings:
        """Parse the `tls:` section (certificate and private_key go together)."""
        section.reject_unknown(
            "certificate",
            "private_key",
            "client_certificates",
            "minimum_version",
            "handshake_timeout_seconds",
            "handshake_failures",
        )
        certificate = section.path_value("certificate", None)
        private_key = section.path_value("private_key", None)
        if (certificate is None) != (private_key is None):
            section.fail(
                "private_key" if private_key is None else "certificate",
                "certificate and private_key must be given together",
            )
        client = section.choice("client_certificates", ("none", "optional", "required"), "none")
        if certificate is None and client != "none":
            section.fail("client_certificates", "needs tls.certificate and tls.private_key")
        failures = section.section("handshake_failures")
        failures.reject_unknown("records_per_peer", "records_overall")
        return cls(
            certificate=certificate,
            private_key=private_key,
            client_certificates=client,
            minimum_version=section.choice("minimum_version", ("1.2", "1.3"), "1.2"),
            handshake_timeout_seconds=section.number("handshake_timeout_seconds", 60.0, minimum=1),
            failure_records_per_peer=failures.integer("records_per_peer", 10, minimum=1),
            failure_records_overall=failures.integer("records_overall", 600, minimum=1),
            file=section.file,
        )


def _unique(section: Section, name: str, values: list[str], what: str = "id") -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            section.fail(name, f"duplicate {what}: {value}")
        seen.add(value)


def _identifier(section: Section) -> str:
    value: str = section.string("id")
    if not _ID_PATTERN.fullmatch(value):
        section.fail("id", "expected letters, digits, '.', '_' or '-' (at most 64)")
    return value


def _issuer(section: Section) -> IssuerSettings:
    section.reject_unknown(
        "id",
        "issuer",
        "audiences",
        "jwks_uri",
        "discovery",
        "algorithms",
        "jwks_ttl_seconds",
        "refresh_interval_seconds",
        "required_claims",
        "claims",
    )
    identifier = _identifier(section)
    jwks_uri = section.string("jwks_uri", None)
    discovery = section.string("discovery", None)
    if (jwks_uri is None) == (discovery is None):
        section.fail("jwks_uri", "give exactly one of jwks_uri or discovery")
    for name, value in (("jwks_uri", jwks_uri), ("discovery", discovery)):
        if value is not None and not value.startswith(("https://", "http://")):
            section.fail(name, "expected an http(s) URL")
    audiences = section.strings("audiences")
    if not audiences:
        section.fail("audiences", "must list at least one audience")
    algorithms = section.strings("algorithms", list(SUPPORTED_ALGORITHMS))
    for algorithm in algorithms:
        if algorithm not in SUPPORTED_ALGORITHMS:
            section.fail(
                "algorithms",
                f"{algorithm} is never accepted (supported: {', '.join(SUPPORTED_ALGORITHMS)})",
            )
    if not algorithms:
        section.fail("algorithms", "must list at least one algorithm")
    claims = section.section("claims")
    claims.reject_unknown(*_CLAIM_NAMES)
    required = section.strings("required_claims", ["exp", "iat"])
    return IssuerSettings(
        id=identifier,
        issuer=section.string("issuer"),
        audiences=tuple(audiences),
        jwks_uri=jwks_uri,
        discovery=discovery,
        algorithms=frozenset(algorithms),
        jwks_ttl_seconds=section.number("jwks_ttl_seconds", 300.0, minimum=1),
        refresh_interval_seconds=section.number("refresh_interval_seconds", 30.0, minimum=0),
        # `exp` is always required: an unbounded token would never leave the cache.
        required_claims=tuple(dict.fromkeys(["exp", *required])),
        claims=ClaimMapping(
            subject=claims.string("subject", "sub"),
            organisation=claims.string("organisation", None),
            roles=claims.string("roles", None),
            nationalities=claims.string("nationalities", None),
            residences=claims.string("residences", None),
        ),
    )


def _authority(section: Section) -> CertificateAuthoritySettings:
    section.reject_unknown("id", "bundle", "crls")
    identifier = _identifier(section)
    bundle: Path = section.path_value("bundle")
    try:
        certificates = tuple(x509.load_pem_x509_certificates(bundle.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            section.file, section.key("bundle"), "not a PEM certificate bundle"
        ) from exc
    crl_paths: list[Path] = []
    revoked: set[tuple[bytes, int]] = set()
    next_updates: list[datetime] = []
    crl_names = section.strings("crls", [])
    for index, name in enumerate(crl_names):
        key = f"crls[{index}]"
        path = section.resolve(name)
        crl = _load_crl(section, key, path)
        issuer = next((c for c in certificates if c.subject == crl.issuer), None)
        if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            section.fail(key, "CRL is not signed by a certificate of this CA's bundle")
        issuer_name = crl.issuer.public_bytes()
        revoked.update((issuer_name, entry.serial_number) for entry in crl)
        if crl.next_update_utc is not None:
            next_updates.append(crl.next_update_utc)
        crl_paths.append(path)
    return CertificateAuthoritySettings(
        id=identifier,
        bundle=bundle,
        certificates=certificates,
        crls=tuple(crl_paths),
        revoked=frozenset(revoked),
        crl_next_update=min(next_updates) if next_updates else None,
    )


def _load_crl(section: Section, key: str, path: Path) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(section.file, section.key(key), "CRL file not readable") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(section.file, section.key(key), "not a PEM or DER CRL") from exc


def _forwarded(section: Section, authority_ids: list[str]) -> ForwardedCertificateSettings:
    section.reject_unknown("header", "format", "trusted_proxies", "certificate_authorities")
    header: str = section.string("header", "x-forwarded-client-cert")
    proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in section.strings("trusted_proxies"):
        try:
            proxies.append(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ConfigError(
                section.file, section.key("trusted_proxies"), f"not a CIDR network: {value}"
            ) from exc
    if not proxies:
        section.fail("trusted_proxies", "must list at least one proxy network")
    authorities = section.strings("certificate_authorities", list(authority_ids))
    for authority in authorities:
        if authority not in authority_ids:
            section.fail("certificate_authorities", f"unknown certificate authority: {authority}")
    if not authorities:
        section.fail("certificate_authorities", "no certificate authority is configured")
    return ForwardedCertificateSettings(
        header=header.lower().encode("latin-1"),
        format=section.choice("format", ("xfcc", "pem-urlencoded"), "xfcc"),
        trusted_proxies=tuple(proxies),
        certificate_authorities=tuple(authorities),
    )
