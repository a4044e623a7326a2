"""Client certificates: direct (ASGI TLS extension) and forwarded by a trusted proxy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import ConfigError
from gateway.identity import (
    Attribute,
    AuthenticationError,
    Authenticator,
    Credential,
    IdentitySettings,
)
from gateway.identity._rfc3739 import encode_directory_attributes
from tests.identity.conftest import (
    NOW,
    FakeIdentityProvider,
    Pki,
    bearer_scope,
    identity_settings,
    issuer_config,
)

MakeAuthenticator = Callable[[IdentitySettings], Authenticator]
PROXY = "10.0.0.5"


def _settings(pki: Pki, **extra: Any) -> IdentitySettings:
    data: dict[str, Any] = {
        "certificate_authorities": [{"id": "agency", "bundle": str(pki.agency)}]
    }
    data.update(extra)
    return identity_settings(data)


def _forwarding(pki: Pki, header_format: str, header: str) -> IdentitySettings:
    return _settings(
        pki,
        forwarded_certificate={
            "header": header,
            "format": header_format,
            "trusted_proxies": ["10.0.0.0/24", "::1/128"],
        },
    )


def _tls_scope(pem: str | None, token: str | None = None) -> dict[str, Any]:
    scope = bearer_scope(token)
    if pem is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": [pem], "server_cert": None}}
    return scope


def _xfcc(pem: str) -> bytes:
    digest = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()
    return (
        f'By=spiffe://gateway;Hash={digest};Cert="{quote(pem, safe="")}";'
        f'Subject="CN=alice,O=US CAISI";URI=spiffe://client'
    ).encode()


async def _reason(authenticator: Authenticator, scope: dict[str, Any], now: float = NOW) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(scope, now=now)
    return caught.value.reason


async def test_direct_certificate_gives_subject_ca_and_dual_citizenship(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))

    principal = await authenticator.authenticate(_tls_scope(pki.pem(pki.alice)), now=NOW)

    source = "ca:agency"
    assert ("alice", source, frozenset({"mtls"}), pki.thumbprint(pki.alice) != "") == (
        principal.subject,
        principal.issuer,
        principal.auth_methods,
        True,
    )
    assert (
        frozenset(
            {
                Attribute("organisation", "US CAISI", source),
                Attribute("role", "evaluator", source),
                Attribute("role", "red-team", source),
                Attribute("nationality", "US", source),
                Attribute("nationality", "FR", source),
                Attribute("residence", "DE", source),
            }
        )
        == principal.attributes
    )


async def test_fingerprint_is_sha256_of_the_leaf_der(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    certificate = x509.load_pem_x509_certificate(pki.alice.read_bytes())
    authenticator = make_authenticator(_settings(pki))

    principal = await authenticator.authenticate(_tls_scope(pki.pem(pki.alice)), now=NOW)

    assert certificate.fingerprint(hashes.SHA256()).hex() == principal.certificate_fingerprint


async def test_certificate_from_an_untrusted_ca_is_refused(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))

    assert await _reason(authenticator, _tls_scope(pki.pem(pki.mallory))) == "cert.untrusted_ca"


async def test_expired_certificate_is_refused(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))

    assert await _reason(authenticator, _tls_scope(pki.pem(pki.expired))) == "cert.expired"


async def test_cached_certificate_is_still_checked_against_now(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))
    scope = _tls_scope(pki.pem(pki.alice))
    await authenticator.authenticate(scope, now=NOW)

    assert await _reason(authenticator, scope, now=NOW + 400 * 86400) == "cert.expired"
    assert await _reason(authenticator, scope, now=NOW - 86400) == "cert.not_yet_valid"


async def test_garbage_certificate_is_malformed(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

    assert await _reason(authenticator, _tls_scope(pem)) == "cert.malformed"


def _custom_leaf(
    ca_directory: Path,
    *,
    usage: list[x509.ObjectIdentifier] | None = None,
    directory_attributes: bytes | None = None,
) -> x509.Certificate:
    ca = x509.load_pem_x509_certificate((ca_directory / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (ca_directory / "ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.fromtimestamp(NOW, UTC) - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carol")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if directory_attributes is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.9"), directory_attributes),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


async def test_certificate_for_server_use_only_is_refused(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    leaf = _custom_leaf(pki.root / "agency", usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    authenticator = make_authenticator(_settings(pki))

    assert await _reason(authenticator, _tls_scope(_pem(leaf))) == "cert.wrong_usage"


async def test_unknown_citizenship_code_is_dropped(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    sda = encode_directory_attributes(["ZZ", "CH"])
    leaf = _custom_leaf(pki.root / "agency", directory_attributes=sda)
    authenticator = make_authenticator(_settings(pki))

    principal = await authenticator.authenticate(_tls_scope(_pem(leaf)), now=NOW)

    assert frozenset({"CH"}) == principal.values("nationality")


async def test_undecodable_directory_attributes_are_malformed(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    leaf = _custom_leaf(pki.root / "agency", directory_attributes=b"\x30\x05\x02\x01\x01")
    authenticator = make_authenticator(_settings(pki))

    assert await _reason(authenticator, _tls_scope(_pem(leaf))) == "cert.malformed"


async def test_revoked_certificate_is_refused(
    pki: Pki, make_authenticator: MakeAuthenticator, tmp_path: Path
) -> None:
    leaf = _custom_leaf(pki.root / "agency")
    ca = x509.load_pem_x509_certificate(pki.agency.read_bytes())
    ca_key = serialization.load_pem_private_key(
        (pki.root / "agency" / "ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    when = datetime.fromtimestamp(NOW, UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(when - timedelta(hours=1))
        .next_update(when + timedelta(days=7))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(leaf.serial_number)
            .revocation_date(when - timedelta(hours=1))
            .build()
        )
        .sign(ca_key, hashes.SHA256())
    )
    crl_path = tmp_path / "agency.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    settings = identity_settings(
        {
            "certificate_authorities": [
                {"id": "agency", "bundle": str(pki.agency), "crls": [str(crl_path)]}
            ]
        }
    )
    authenticator = make_authenticator(settings)

    assert await _reason(authenticator, _tls_scope(_pem(leaf))) == "cert.revoked"
    principal = await authenticator.authenticate(_tls_scope(pki.pem(pki.alice)), now=NOW)
    assert principal.subject == "alice"
    stale = NOW + 8 * 86400
    assert (
        await _reason(authenticator, _tls_scope(pki.pem(pki.alice)), now=stale)
        == "cert.revocation_unavailable"
    )


def test_crl_not_signed_by_the_ca_is_a_config_error(pki: Pki, tmp_path: Path) -> None:
    rogue_key = serialization.load_pem_private_key(
        (pki.root / "rogue" / "ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(rogue_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.agency.read_bytes())
    when = datetime.fromtimestamp(NOW, UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(when)
        .next_update(when + timedelta(days=1))
        .sign(rogue_key, hashes.SHA256())
    )
    crl_path = tmp_path / "forged.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    with pytest.raises(ConfigError) as caught:
        identity_settings(
            {
                "certificate_authorities": [
                    {"id": "agency", "bundle": str(pki.agency), "crls": [str(crl_path)]}
                ]
            }
        )

    assert caught.value.key == "identity.certificate_authorities[0].crls[0]"


async def test_forwarded_xfcc_from_a_trusted_proxy_is_accepted(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "xfcc", "x-forwarded-client-cert"))
    scope = bearer_scope(None, client=(PROXY, 4000))
    scope["headers"].append((b"x-forwarded-client-cert", _xfcc(pki.pem(pki.alice))))

    principal = await authenticator.authenticate(scope, now=NOW)

    assert ("alice", frozenset({"mtls-forwarded"}), frozenset({"US", "FR"})) == (
        principal.subject,
        principal.auth_methods,
        principal.values("nationality"),
    )


async def test_a_forwarded_header_seen_before_is_still_checked_against_now(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "xfcc", "x-forwarded-client-cert"))
    scope = bearer_scope(None, client=(PROXY, 4000))
    scope["headers"].append((b"x-forwarded-client-cert", _xfcc(pki.pem(pki.alice))))
    await authenticator.authenticate(scope, now=NOW)
    expires = x509.load_pem_x509_certificate(pki.alice.read_bytes()).not_valid_after_utc

    assert await _reason(authenticator, scope, now=expires.timestamp() + 1) == "cert.expired"


async def test_forwarded_urlencoded_pem_from_a_trusted_proxy_is_accepted(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "pem-urlencoded", "x-ssl-client-cert"))
    scope = bearer_scope(None, client=("::1", 4000))
    scope["headers"].append((b"x-ssl-client-cert", quote(pki.pem(pki.alice)).encode()))

    principal = await authenticator.authenticate(scope, now=NOW)

    assert (principal.subject, principal.issuer) == ("alice", "ca:agency")


async def test_forwarded_header_from_an_untrusted_peer_is_ignored(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "xfcc", "x-forwarded-client-cert"))
    scope = bearer_scope(None, client=("192.0.2.1", 4000))
    scope["headers"].append((b"x-forwarded-client-cert", _xfcc(pki.pem(pki.alice))))

    assert await _reason(authenticator, scope) == "credentials.missing"


async def test_forwarded_certificate_from_an_untrusted_ca_is_refused(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "xfcc", "x-forwarded-client-cert"))
    scope = bearer_scope(None, client=(PROXY, 4000))
    scope["headers"].append((b"x-forwarded-client-cert", _xfcc(pki.pem(pki.mallory))))

    assert await _reason(authenticator, scope) == "cert.untrusted_ca"


@pytest.mark.parametrize(
    "value",
    [
        b'Cert="not-a-certificate"',
        b"Hash=abc",
        b'Cert="%ZZ";Cert2="x',
        b'Cert="a",Cert="b"',
    ],
)
async def test_unreadable_xfcc_is_malformed(
    pki: Pki, make_authenticator: MakeAuthenticator, value: bytes
) -> None:
    authenticator = make_authenticator(_forwarding(pki, "xfcc", "x-forwarded-client-cert"))
    scope = bearer_scope(None, client=(PROXY, 4000))
    scope["headers"].append((b"x-forwarded-client-cert", value))

    assert await _reason(authenticator, scope) == "cert.malformed"


async def test_token_and_certificate_combine_with_each_source_kept(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    settings = _settings(pki, issuers=[issuer_config(idp)])
    authenticator = make_authenticator(settings)

    principal = await authenticator.authenticate(
        _tls_scope(pki.pem(pki.alice), idp.token()), now=NOW
    )

    assert (frozenset({"oidc", "mtls"}), frozenset({"US", "FR"})) == (
        principal.auth_methods,
        principal.values("nationality"),
    )
    assert frozenset({"US"}) == principal.values("nationality", ["oidc:agency-idp"])
    assert frozenset({"US", "FR"}) == principal.values("nationality", ["ca:agency"])


async def test_certificate_bound_token_with_its_certificate_is_accepted(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki, issuers=[issuer_config(idp)]))
    token = idp.token({"cnf": {"x5t#S256": pki.thumbprint(pki.alice)}})

    principal = await authenticator.authenticate(_tls_scope(pki.pem(pki.alice), token), now=NOW)

    assert principal.subject == "alice"


async def test_certificate_bound_token_with_the_wrong_certificate_is_refused(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki, issuers=[issuer_config(idp)]))
    token = idp.token({"cnf": {"x5t#S256": pki.thumbprint(pki.alice)}})

    assert (
        await _reason(authenticator, _tls_scope(pki.pem(pki.bob), token))
        == "token.certificate_mismatch"
    )
    assert await _reason(authenticator, _tls_scope(None, token)) == "token.certificate_mismatch"


async def test_valid_certificate_does_not_rescue_an_invalid_token(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki, issuers=[issuer_config(idp)]))
    token = idp.token({"exp": int(NOW) - 3600})

    assert await _reason(authenticator, _tls_scope(pki.pem(pki.alice), token)) == "token.expired"


async def test_token_and_certificate_keep_both_credentials_for_the_policy(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki, issuers=[issuer_config(idp)]))
    scope = _tls_scope(pki.pem(pki.bob), idp.token())

    principal = await authenticator.authenticate(scope, now=NOW)

    assert principal.subject == "alice"
    assert principal.credentials == frozenset(
        {Credential("oidc:agency-idp", "alice"), Credential("ca:agency", "bob")}
    )


def test_the_removed_combine_section_is_refused_with_where_it_went(pki: Pki) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(pki, combine={"require_same_subject": True})

    assert caught.value.key == "identity.combine"
    assert "credential_conflicts" in caught.value.message


async def test_principal_json_holds_no_token_or_certificate(
    pki: Pki, idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki, issuers=[issuer_config(idp)]))
    token = idp.token()
    pem = pki.pem(pki.alice)

    text = str((await authenticator.authenticate(_tls_scope(pem, token), now=NOW)).to_json())

    assert token.split(".")[2] not in text
    assert pem.splitlines()[1] not in text


async def test_opaque_bearer_placeholder_beside_a_certificate_is_ignored(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))

    principal = await authenticator.authenticate(
        _tls_scope(pki.pem(pki.alice), token="sk-placeholder"), now=NOW
    )

    assert ("alice", frozenset({"mtls"})) == (principal.subject, principal.auth_methods)


async def test_opaque_bearer_placeholder_alone_is_malformed(
    pki: Pki, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(_settings(pki))

    reason = await _reason(authenticator, _tls_scope(None, "sk-placeholder"))

    assert reason == "token.malformed"
