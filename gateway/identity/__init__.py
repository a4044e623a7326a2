"""Who is calling: OIDC/JWT bearer tokens and X.509 client certificates -> `Principal`.

Errors (see `_errors`):

    AuthenticationError   a request's credentials were refused (`.reason`)
    PkiError              the `certs` tooling could not make or read a certificate

A refused TLS handshake is not an error of this package: `TlsHttpProtocol` reports it
as a `HandshakeFailure`, and `HandshakeFailureLimiter` caps how many are recorded.
"""

from gateway.identity._authenticator import Authenticator
from gateway.identity._errors import AuthenticationError, PkiError
from gateway.identity._handshakes import (
    HandshakeFailure,
    HandshakeFailureLimiter,
    SuppressedFailures,
)
from gateway.identity._settings import (
    CertificateAuthoritySettings,
    ClaimMapping,
    ForwardedCertificateSettings,
    IdentitySettings,
    IssuerSettings,
    TlsSettings,
)
from gateway.identity.countries import normalise_country
from gateway.identity.principal import Attribute, AttributeName, Credential, Principal
from gateway.identity.tls import TlsHttpProtocol, build_server_ssl_context

__all__ = [
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
