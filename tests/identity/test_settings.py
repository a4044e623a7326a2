"""The identity: section is parsed strictly, with errors naming file and key."""

from typing import Any

import pytest

from gateway.config import ConfigError
from tests.identity.conftest import identity_settings

ISSUER: dict[str, Any] = {
    "id": "idp",
    "issuer": "https://idp.example",
    "audiences": ["gateway"],
    "jwks_uri": "https://idp.example/jwks",
}


def _error_key(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        identity_settings(data)
    return caught.value.key


def test_defaults_are_applied() -> None:
    settings = identity_settings({"issuers": [ISSUER]})

    issuer = settings.issuers[0]
    assert (
        settings.clock_skew_seconds,
        settings.token_cache_size,
        issuer.jwks_ttl_seconds,
        issuer.refresh_interval_seconds,
        issuer.required_claims,
        issuer.claims.subject,
        issuer.source,
    ) == (60.0, 10000, 300.0, 30.0, ("exp", "iat"), "sub", "oidc:idp")


@pytest.mark.parametrize("algorithm", ["none", "HS256", "HS512", "RS384"])
def test_listing_an_unsupported_algorithm_is_a_config_error(algorithm: str) -> None:
    data = {"issuers": [{**ISSUER, "algorithms": ["RS256", algorithm]}]}

    assert _error_key(data) == "identity.issuers[0].algorithms"


def test_unknown_key_is_a_config_error() -> None:
    assert _error_key({"clock_skew": 5}) == "identity.clock_skew"


def test_jwks_uri_and_discovery_together_is_a_config_error() -> None:
    data = {"issuers": [{**ISSUER, "discovery": "https://idp.example/.well-known/x"}]}

    assert _error_key(data) == "identity.issuers[0].jwks_uri"


def test_duplicate_issuer_ids_is_a_config_error() -> None:
    data = {"issuers": [ISSUER, {**ISSUER, "issuer": "https://other.example"}]}

    assert _error_key(data) == "identity.issuers"


def test_missing_bundle_file_is_a_config_error() -> None:
    data = {"certificate_authorities": [{"id": "ca", "bundle": "no/such/file.pem"}]}

    assert _error_key(data) == "identity.certificate_authorities[0].bundle"


def test_bad_proxy_network_is_a_config_error() -> None:
    data = {"forwarded_certificate": {"trusted_proxies": ["10.0.0.1/8"]}}

    assert _error_key(data) == "identity.forwarded_certificate.trusted_proxies"


def test_has_sources_is_false_without_issuers_or_cas() -> None:
    assert (
        identity_settings({}).has_sources(),
        identity_settings({"issuers": [ISSUER]}).has_sources(),
    ) == (False, True)
