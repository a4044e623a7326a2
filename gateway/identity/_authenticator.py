"""The Authenticator: from an ASGI scope to one immutable Principal, or a refusal.

Credentials are a bearer token (``Authorization: Bearer``), a client certificate
(direct mTLS through the ASGI TLS extension, or forwarded by a trusted proxy), or
both. When both are presented, both must verify; subject and issuer come from the
token, attributes are the union (each with its own source), both credentials are kept
(`Principal.credentials`), and a certificate-bound token (RFC 8705 ``cnf.x5t#S256``)
must match the certificate. Whether two credentials may disagree is the policy's
decision (``identity.conflict``), since only it knows whom it trusts for what.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from gateway.identity._certificates import CertificateIdentity, CertificateVerifier
from gateway.identity._errors import AuthenticationError
from gateway.identity._forwarded import ProxyAddresses, parse_forwarded_certificate
from gateway.identity._lru import LruCache
from gateway.identity._settings import IdentitySettings
from gateway.identity._tokens import TokenIdentity, TokenVerifier
from gateway.identity.principal import Principal

_BEARER = b"bearer "
_LOGGABLE = re.compile(r"[^A-Za-z0-9<> _-]")


class Authenticator:
    """Authenticates requests under `settings`.

    `http` is used to fetch discovery documents and JWKS; when not given, the
    Authenticator makes (and `aclose` closes) its own client. `require_certificate`
    refuses a request without a client certificate (``cert.missing``), whatever else it
    carries: the listener asks for one at the TLS layer but lets the handshake finish
    without, so the caller gets an HTTP 401 rather than a broken connection. `logger`
    receives notes such as dropped attribute values; it defaults to a structlog logger.
    """

    def __init__(
        self,
        settings: IdentitySettings,
        http: httpx.AsyncClient | None = None,
        *,
        require_certificate: bool = False,
        logger: Any = None,
    ) -> None:
        self._settings = settings
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=5.0)
        self._logger = logger if logger is not None else structlog.get_logger("gateway.identity")
        self._tokens = TokenVerifier(settings, self._http, on_invalid_code=self._note_invalid)
        self._max_header = settings.max_token_bytes + len(_BEARER)
        self._direct = CertificateVerifier(
            settings.certificate_authorities,
            cache_size=settings.certificate_cache_size,
            on_invalid_code=self._note_invalid,
        )
        forwarded = settings.forwarded_certificate
        self._forwarded_header = forwarded.header if forwarded is not None else None
        self._forwarded_format = forwarded.format if forwarded is not None else ""
        self._proxies = ProxyAddresses(forwarded.trusted_proxies if forwarded else ())
        self._forwarded = CertificateVerifier(
            [
                a
                for a in settings.certificate_authorities
                if forwarded is not None and a.id in forwarded.certificate_authorities
            ],
            cache_size=settings.certificate_cache_size,
            on_invalid_code=self._note_invalid,
        )
        self._forwarded_identities: LruCache[bytes, CertificateIdentity] = LruCache(
            settings.certificate_cache_size
        )
        self._require_certificate = require_certificate

    async def authenticate(self, scope: Mapping[str, Any], now: float) -> Principal:
        """The Principal for an ASGI HTTP `scope` at `now` (seconds since the epoch).

        Raises AuthenticationError (and nothing else); its `reason` says why.
        """
        try:
            return await self._authenticate(scope, now)
        except AuthenticationError:
            raise
        except Exception as exc:  # the one boundary where any failure means "deny"
            raise AuthenticationError("identity.error") from exc

    async def aclose(self) -> None:
        """Close the HTTP client if this Authenticator made it."""
        if self._owns_http:
            await self._http.aclose()

    async def _authenticate(self, scope: Mapping[str, Any], now: float) -> Principal:
        # Only a trusted proxy's forwarded header is ever looked at.
        forwarded_header = self._forwarded_header
        if forwarded_header is not None and not self._proxies.trusts(scope.get("client")):
            forwarded_header = None
        authorization: bytes | None = None
        forwarded_value: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    raise AuthenticationError("token.malformed")
                authorization = value
            elif name == forwarded_header:
                if forwarded_value is not None:
                    raise AuthenticationError("cert.malformed")
                forwarded_value = value

        certificate: CertificateIdentity | None = None
        method = "mtls"
        if forwarded_value is not None:
            certificate = self._forwarded_identity(forwarded_value, now)
            method = "mtls-forwarded"
        elif forwarded_header is None:
            # From a trusted proxy the TLS peer is the proxy itself, never the caller.
            chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
            if chain:
                certificate = self._direct.verify_pem(chain, now)
        if certificate is None and self._require_certificate:
            raise AuthenticationError("cert.missing")

        token: TokenIdentity | None = None
        if authorization is not None:
            text = self._bearer(authorization)
            # SDKs such as openai's insist on an API key, so mTLS callers send a placeholder.
            # A bearer value that cannot be a JWT (no ".") carries no claims; beside a
            # verified certificate it is ignored, on its own it is refused as malformed.
            if certificate is None or "." in text:
                token = await self._tokens.verify(text, now)

        if token is None:
            if certificate is None:
                raise AuthenticationError("credentials.missing")
            return Principal(
                subject=certificate.subject,
                issuer=certificate.issuer,
                attributes=certificate.attributes,
                auth_methods=frozenset({method}),
                certificate_fingerprint=certificate.fingerprint,
                credentials=certificate.credentials,
            )
        if certificate is None:
            if token.certificate_thumbprint is not None:
                raise AuthenticationError("token.certificate_mismatch")
            return Principal(
                subject=token.subject,
                issuer=token.issuer,
                attributes=token.attributes,
                auth_methods=frozenset({"oidc"}),
                token_id=token.token_id,
                credentials=token.credentials,
            )
        return self._combine(token, certificate, method)

    def _combine(
        self, token: TokenIdentity, certificate: CertificateIdentity, method: str
    ) -> Principal:
        thumbprint = token.certificate_thumbprint
        if thumbprint is not None and not hmac.compare_digest(
            thumbprint.encode("ascii", "replace"), certificate.thumbprint.encode("ascii")
        ):
            raise AuthenticationError("token.certificate_mismatch")
        # Whether the two may disagree (subject, trusted organisation) is the policy's
        # call: it alone knows which source is trusted for which values.
        return Principal(
            subject=token.subject,
            issuer=token.issuer,
            attributes=token.attributes | certificate.attributes,
            auth_methods=frozenset({"oidc", method}),
            certificate_fingerprint=certificate.fingerprint,
            token_id=token.token_id,
            credentials=token.credentials | certificate.credentials,
        )

    def _bearer(self, authorization: bytes) -> str:
        if len(authorization) > self._max_header:
            raise AuthenticationError("token.too_large")
        if authorization[:7].lower() != _BEARER:
            raise AuthenticationError("credentials.unsupported")
        token = authorization[7:].strip()
        if not token:
            raise AuthenticationError("token.malformed")
        try:
            return token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationError("token.malformed") from exc

    def _forwarded_identity(self, value: bytes, now: float) -> CertificateIdentity:
        # A proxy sends the same header for every request of a caller: parse and verify
        # it once, and check only the time (validity, CRL freshness) on the next ones.
        identity = self._forwarded_identities.get(value)
        if identity is None:
            chain = parse_forwarded_certificate(value, self._forwarded_format)
            identity = self._forwarded.verify_der(chain, now)
            self._forwarded_identities.put(value, identity)
        else:
            CertificateVerifier.check_time(identity, now)
        return identity

    def _note_invalid(self, name: str, source: str, value: str) -> None:
        # The offending code is shortened and stripped to letters so a log line stays safe.
        self._logger.warning(
            "attribute dropped",
            reason="attribute.invalid_code",
            attribute=name,
            source=source,
            value=_LOGGABLE.sub("", value[:16]),
        )
