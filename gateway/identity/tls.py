"""TLS terminated by the gateway: the server SSL context and a uvicorn protocol that
exposes the client certificate to the app.

uvicorn does not put the peer certificate into the ASGI scope, so `TlsHttpProtocol`
reads it once per connection and adds the ASGI TLS extension to every request scope::

    scope["extensions"]["tls"] = {"client_cert_chain": [<PEM of the leaf>], ...}

Python's ssl module exposes only the leaf, so the chain holds one certificate; the
gateway verifies it again against the configured CAs (which also decides the CA id).
Use it as ``uvicorn.Config(app, http=TlsHttpProtocol, ssl_context_factory=...)``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol

from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import ConfigError
from gateway.identity._settings import IdentitySettings, TlsSettings

_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_DER = Encoding.DER
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class GatewaySettings(Protocol):
    """Anything with the parsed `tls:` and `identity:` sections (the gateway's Settings)."""

    @property
    def tls(self) -> TlsSettings: ...

    @property
    def identity(self) -> IdentitySettings: ...


def build_server_ssl_context(
    settings: TlsSettings | GatewaySettings, identity: IdentitySettings | None = None
) -> ssl.SSLContext:
    """The server context: our certificate and key, TLS >= 1.2, client CAs from `identity`.

    `settings` is the `tls:` settings (then pass `identity` too when client certificates
    are requested) or the whole gateway settings holding both. Client certificates are
    requested as `client_certificates` says; the CAs offered are the union of the
    bundles of `identity.certificate_authorities`.
    """
    if not isinstance(settings, TlsSettings):
        identity = settings.identity
        settings = settings.tls
    if settings.certificate is None or settings.private_key is None:
        raise ConfigError(settings.file, "tls.certificate", "is required to serve TLS")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if settings.minimum_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(settings.certificate, settings.private_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            settings.file, "tls.certificate", "cannot load the certificate and private key"
        ) from exc
    if settings.client_certificates != "none":
        authorities = identity.certificate_authorities if identity is not None else ()
        if not authorities:
            raise ConfigError(
                settings.file,
                "tls.client_certificates",
                "needs identity.certificate_authorities to verify client certificates",
            )
        bundle = "\n".join(
            ssl.DER_cert_to_PEM_cert(certificate.public_bytes(_DER))
            for authority in authorities
            for certificate in authority.certificates
        )
        context.load_verify_locations(cadata=bundle)
        context.verify_mode = _VERIFY_MODES[settings.client_certificates]
    return context


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection, or None if it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class TlsHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension in each request scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The handshake is complete when asyncio calls connection_made on a TLS transport.
        self._tls = tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            # A fresh copy per request: an app must not alter what the next request sees.
            extension = dict(self._tls, client_cert_chain=list(self._tls["client_cert_chain"]))
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})["tls"] = extension
