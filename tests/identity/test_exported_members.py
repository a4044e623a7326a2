"""The public surface of gateway.identity is pinned: changing it is a deliberate act."""

import gateway.identity


def test_all_lists_exactly_the_public_api() -> None:
    assert gateway.identity.__all__ == [
        "Attribute",
        "AttributeName",
        "AuthenticationError",
        "Authenticator",
        "CertificateAuthoritySettings",
        "ClaimMapping",
        "Credential",
        "ForwardedCertificateSettings",
        "HandshakeFailure",
        "HandshakeFailureLimiter",
        "IdentitySettings",
        "IssuerSettings",
        "PkiError",
        "Principal",
        "SuppressedFailures",
        "TlsHttpProtocol",
        "TlsSettings",
        "build_server_ssl_context",
        "normalise_country",
    ]


def test_every_exported_name_exists() -> None:
    missing = [name for name in gateway.identity.__all__ if not hasattr(gateway.identity, name)]

    assert missing == []
