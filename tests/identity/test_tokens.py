"""Bearer tokens against a fake identity provider serving JWKS over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest

from gateway.identity import Attribute, AuthenticationError, Authenticator, IdentitySettings
from tests.identity.conftest import (
    AUDIENCE,
    ISSUER,
    NOW,
    FakeIdentityProvider,
    bearer_scope,
    identity_settings,
    issuer_config,
)

MakeAuthenticator = Callable[[IdentitySettings], Authenticator]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes) -> str:
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def authenticator(
    idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> Authenticator:
    return make_authenticator(identity_settings({"issuers": [issuer_config(idp)]}))


async def _reason(authenticator: Authenticator, token: str, now: float = NOW) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(bearer_scope(token), now=now)
    return caught.value.reason


async def test_valid_token_gives_subject_issuer_and_sourced_attributes(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    principal = await authenticator.authenticate(bearer_scope(idp.token()), now=NOW)

    assert ("alice", ISSUER, frozenset({"oidc"})) == (
        principal.subject,
        principal.issuer,
        principal.auth_methods,
    )
    assert (
        frozenset(
            {
                Attribute("organisation", "US CAISI", "oidc:agency-idp"),
                Attribute("role", "evaluator", "oidc:agency-idp"),
                Attribute("nationality", "US", "oidc:agency-idp"),
            }
        )
        == principal.attributes
    )


async def test_icao_and_alpha3_nationalities_are_normalised(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    claims = {"verified_claims": {"claims": {"nationalities": ["D", "GBD", "FRA", "UNK"]}}}

    principal = await authenticator.authenticate(bearer_scope(idp.token(claims)), now=NOW)

    assert frozenset({"DE", "GB", "FR", "XK"}) == principal.values("nationality")


async def test_unknown_nationality_code_is_dropped_and_the_rest_kept(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    claims = {"verified_claims": {"claims": {"nationalities": ["XXA", "CAN"]}}}

    principal = await authenticator.authenticate(bearer_scope(idp.token(claims)), now=NOW)

    assert frozenset({"CA"}) == principal.values("nationality")


async def test_verified_claims_array_is_searched_element_by_element(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    claims = {
        "verified_claims": [
            {"claims": {"nationalities": ["NLD"]}},
            {"claims": {"nationalities": ["BEL"], "residences": ["LUX"]}},
        ]
    }

    principal = await authenticator.authenticate(bearer_scope(idp.token(claims)), now=NOW)

    assert (frozenset({"NL", "BE"}), frozenset({"LU"})) == (
        principal.values("nationality"),
        principal.values("residence"),
    )


@pytest.mark.parametrize("kid", ["ec-1", "ed-1"])
async def test_es256_and_eddsa_tokens_are_accepted(
    idp: FakeIdentityProvider, authenticator: Authenticator, kid: str
) -> None:
    idp.published = ["rsa-1", kid]

    principal = await authenticator.authenticate(bearer_scope(idp.token(kid=kid)), now=NOW)

    assert principal.subject == "alice"


async def test_alg_none_is_refused(authenticator: Authenticator) -> None:
    token = _unsigned({"alg": "none", "kid": "rsa-1"}, _claims(), b"x")

    assert await _reason(authenticator, token) == "token.algorithm_not_allowed"


def _header_segment(algorithm: str) -> str:
    return _b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "HS256", "RSA-OAEP", "ES512", ""])
@pytest.mark.parametrize(
    "rest",
    [
        "{payload}.",  # empty signature
        "{payload}",  # no signature part at all
        "{payload}.{signature}.extra",  # too many parts
        "{payload}.{signature}..",
        "{payload}.!!!",  # not base64url
        "{payload}.a",  # a base64url length that cannot exist
        ".",  # empty payload and signature
        "!!!.{signature}",  # payload not base64url
        "{payload}.{signature}",  # well formed
        "e30.e30.e30.e30",  # five parts, as a JWE
    ],
)
async def test_an_algorithm_outside_the_allow_list_is_refused_as_such_whatever_the_shape(
    authenticator: Authenticator, algorithm: str, rest: str
) -> None:
    payload = _b64(json.dumps(_claims()).encode())
    token = _header_segment(algorithm) + "." + rest.format(payload=payload, signature="c2ln")

    assert await _reason(authenticator, token) == "token.algorithm_not_allowed"


@pytest.mark.parametrize("header", [{}, {"alg": None}, {"alg": 256}, {"alg": ["RS256"]}])
async def test_a_header_without_an_algorithm_name_is_malformed(
    authenticator: Authenticator, header: dict[str, object]
) -> None:
    token = _unsigned(header, _claims(), b"sig")

    assert await _reason(authenticator, token) == "token.malformed"


async def test_hs256_signed_with_the_issuers_public_key_is_refused(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    public_pem = idp.keys["rsa-1"].as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()

    token = f"{header}.{payload}.{_b64(signature)}"

    assert await _reason(authenticator, token) == "token.algorithm_not_allowed"


async def test_algorithm_not_listed_for_the_issuer_is_refused(
    idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    authenticator = make_authenticator(
        identity_settings({"issuers": [issuer_config(idp, algorithms=["ES256"])]})
    )

    assert await _reason(authenticator, idp.token()) == "token.algorithm_not_allowed"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(NOW) - 61}, "token.expired"),
        ({"nbf": int(NOW) + 61}, "token.not_yet_valid"),
        ({"iat": int(NOW) + 61}, "token.issued_in_future"),
        ({"iss": "https://elsewhere.example"}, "token.unknown_issuer"),
        ({"aud": "another-service"}, "token.wrong_audience"),
        ({"aud": ["a", "b"]}, "token.wrong_audience"),
        ({"exp": "tomorrow"}, "token.malformed"),
    ],
)
async def test_claims_outside_the_rules_are_refused(
    idp: FakeIdentityProvider, authenticator: Authenticator, claims: dict[str, object], reason: str
) -> None:
    assert reason == await _reason(authenticator, idp.token(claims))


async def test_times_within_the_clock_skew_are_accepted(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token({"exp": int(NOW) - 59, "nbf": int(NOW) + 59, "iat": int(NOW) + 59})

    principal = await authenticator.authenticate(bearer_scope(token), now=NOW)

    assert principal.subject == "alice"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
async def test_missing_required_claim_is_refused(
    idp: FakeIdentityProvider, authenticator: Authenticator, claim: str
) -> None:
    assert await _reason(authenticator, idp.token(drop=(claim,))) == "token.missing_claim"


async def test_tampered_payload_is_refused_as_bad_signature(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    header, _, signature = idp.token().split(".")
    forged = _b64(json.dumps(_claims(sub="mallory")).encode())

    assert await _reason(authenticator, f"{header}.{forged}.{signature}") == "token.bad_signature"


async def test_unknown_kid_refreshes_once_then_refuses(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    await authenticator.authenticate(bearer_scope(idp.token()), now=NOW)
    fetches = idp.jwks_fetches

    first = await _reason(authenticator, idp.token(kid="rsa-2"), now=NOW + 1)
    second = await _reason(authenticator, idp.token(kid="rsa-2", claims={"jti": "2"}), now=NOW + 2)

    assert (
        first,
        second,
        idp.jwks_fetches - fetches,
    ) == ("token.unknown_key", "token.unknown_key", 1)


async def test_key_rotation_is_picked_up_after_a_refresh(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    await authenticator.authenticate(bearer_scope(idp.token()), now=NOW)
    idp.published = ["rsa-2"]

    principal = await authenticator.authenticate(bearer_scope(idp.token(kid="rsa-2")), now=NOW + 1)

    assert principal.subject == "alice"


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "https://evil.example/jwks.json", "rsa-1' OR '1'='1", "rsa-1/../rsa-1"],
)
async def test_kid_holding_path_url_or_sql_fragments_does_not_match(
    idp: FakeIdentityProvider, authenticator: Authenticator, kid: str
) -> None:
    token = idp.token(header={"kid": kid})

    assert await _reason(authenticator, token) == "token.unknown_key"


async def test_token_over_16_kib_is_refused_before_parsing(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token({"padding": "x" * 16384})

    assert await _reason(authenticator, token) == "token.too_large"
    assert idp.jwks_fetches == 0


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d.e",
        "e30.e30.!!!",
        "e30.e30.a",  # a base64url length that cannot exist
        f"{_b64(b'{not json')}.{_b64(b'{}')}.{_b64(b'sig')}",
        f"{_b64(b'[1, 2]')}.{_b64(b'{}')}.{_b64(b'sig')}",
        f"{_b64(b'{}')}.{_b64(b'[' * 5000 + b']' * 5000)}.{_b64(b'sig')}",
    ],
)
async def test_malformed_base64_or_json_is_refused(
    authenticator: Authenticator, token: str
) -> None:
    assert await _reason(authenticator, token) == "token.malformed"


async def test_jwks_endpoint_down_within_the_ttl_keeps_cached_keys_working(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    await authenticator.authenticate(bearer_scope(idp.token()), now=NOW)
    await idp.stop()

    token = idp.token({"jti": "another"})
    principal = await authenticator.authenticate(bearer_scope(token), now=NOW + 299)

    assert principal.subject == "alice"


async def test_jwks_endpoint_down_after_the_ttl_fails_closed(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token({"exp": int(NOW) + 3600})
    await authenticator.authenticate(bearer_scope(token), now=NOW)
    await idp.stop()

    # Even the cached token: its cache entry ends with the JWKS TTL.
    assert await _reason(authenticator, token, now=NOW + 301) == "token.keys_unavailable"


async def test_repeated_token_is_served_from_cache_without_fetching(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token()
    await authenticator.authenticate(bearer_scope(token), now=NOW)
    fetches = idp.jwks_fetches

    for step in range(5):
        await authenticator.authenticate(bearer_scope(token), now=NOW + step)

    assert fetches == idp.jwks_fetches


async def test_cached_token_is_refused_once_it_expires(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token({"exp": int(NOW) + 30})
    await authenticator.authenticate(bearer_scope(token), now=NOW)

    assert await _reason(authenticator, token, now=NOW + 91) == "token.expired"


async def test_discovery_document_leads_to_the_jwks(
    idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    config = issuer_config(idp, discovery=f"{idp.base_url}/.well-known/openid-configuration")
    del config["jwks_uri"]
    authenticator = make_authenticator(identity_settings({"issuers": [config]}))

    principal = await authenticator.authenticate(bearer_scope(idp.token()), now=NOW)

    assert (principal.subject, idp.jwks_fetches) == ("alice", 1)


async def test_discovery_naming_another_issuer_fails_closed(
    idp: FakeIdentityProvider, make_authenticator: MakeAuthenticator
) -> None:
    config = issuer_config(
        idp,
        issuer="https://idp.agency.example/",
        discovery=f"{idp.base_url}/.well-known/openid-configuration",
    )
    del config["jwks_uri"]
    authenticator = make_authenticator(identity_settings({"issuers": [config]}))
    token = idp.token({"iss": "https://idp.agency.example/"})

    assert await _reason(authenticator, token) == "token.keys_unavailable"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (b"Basic YWxpY2U6c2VjcmV0", "credentials.unsupported"),
        (b"Bearer ", "token.malformed"),
        (b"Bearer " + b"a" * 20000, "token.too_large"),
    ],
)
async def test_unusable_authorization_header_is_refused(
    authenticator: Authenticator, authorization: bytes, reason: str
) -> None:
    scope = bearer_scope(None)
    scope["headers"].append((b"authorization", authorization))

    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(scope, now=NOW)

    assert reason == caught.value.reason


async def test_no_credentials_at_all_is_credentials_missing(authenticator: Authenticator) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(bearer_scope(None), now=NOW)

    assert caught.value.reason == "credentials.missing"


async def test_unexpected_scope_shape_becomes_identity_error(
    authenticator: Authenticator,
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate({"type": "http", "headers": None}, now=NOW)

    assert caught.value.reason == "identity.error"


async def test_refusal_message_holds_no_token_text(
    idp: FakeIdentityProvider, authenticator: Authenticator
) -> None:
    token = idp.token({"exp": int(NOW) - 3600})

    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(bearer_scope(token), now=NOW)

    assert token.split(".")[1] not in str(caught.value)
    assert token.split(".")[1] not in json.dumps(caught.value.args)
