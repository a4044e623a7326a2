"""Errors of the identity package.

    Exception
     +-- AuthenticationError   a request's credentials were refused; `.reason` is a stable code
     +-- PkiError              a certificate could not be made or read by the `certs` tooling

Configuration mistakes raise `gateway.config.ConfigError` when settings are parsed.
"""

from __future__ import annotations


class AuthenticationError(Exception):
    """The caller could not be authenticated.

    `reason` is a stable code such as ``token.expired`` or ``cert.untrusted_ca``
    (the full list is in docs/identity.md). The message never holds a token,
    key or certificate.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"authentication failed: {reason}")


class PkiError(Exception):
    """A certificate or key could not be created, loaded or inspected; `.path` names the file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)
