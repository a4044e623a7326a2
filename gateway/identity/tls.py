"""TLS terminated by the gateway: the server SSL context and a uvicorn protocol that
runs the handshake itself and exposes the client certificate to the app.

uvicorn does not put the peer certificate into the ASGI scope, so `TlsHttpProtocol`
reads it once per connection and adds the ASGI TLS extension to every request scope::

    scope["extensions"]["tls"] = {"client_cert_chain": [<PEM of the leaf>], ...}

Python's ssl module exposes only the leaf, so the chain holds one certificate; the
gateway verifies it again against the configured CAs (which also decides the CA id).

asyncio and uvloop report a failed server-side handshake only at debug level, so a
client refused for an unknown CA or an expired certificate would leave no trace.
`TlsHttpProtocol.terminating(context, on_failure)` therefore makes a protocol class
for a plain TCP server that performs the handshake itself (``loop.start_tls``) and
reports every failure as a `HandshakeFailure`; serve it with uvicorn *without* uvicorn's
own TLS: ``uvicorn.Config(app, http=TlsHttpProtocol.terminating(...))``. The bare
`TlsHttpProtocol` still works behind uvicorn's TLS (``ssl_context_factory=...``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import ConfigError
from gateway.identity._handshakes import HandshakeFailure
from gateway.identity._settings import IdentitySettings, TlsSettings

# "required" asks for a certificate without making the handshake fail when none comes:
# the Authenticator refuses the request (`cert.missing`), so the caller gets an HTTP 401
# rather than a broken connection. A certificate that is presented is still verified
# during the handshake either way.
_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_OPTIONAL,
}
HANDSHAKE_TIMEOUT_SECONDS = 60.0
_T = TypeVar("_T")
FailureHandler = Callable[[HandshakeFailure], None]
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


@dataclass(frozen=True, slots=True)
class Termination:
    """How a `TlsHttpProtocol` class terminates TLS itself."""

    context: ssl.SSLContext
    on_failure: FailureHandler
    handshake_timeout: float


class TlsHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension in each request scope.

    The class made by `terminating()` also performs the TLS handshake on the plain TCP
    connection uvicorn hands it, and reports a handshake that fails.
    """

    termination: ClassVar[Termination | None] = None

    _tls: dict[str, Any] | None = None
    _handshake: asyncio.Task[None] | None = None
    # Bytes that came before the TLS layer took over the transport (the ClientHello,
    # under uvloop), and bytes the TLS layer passed on before connection_made.
    _raw: list[bytes] | None = None
    _raw_transport: asyncio.Transport | None = None
    _early: list[bytes] | None = None
    _tls_layer_owns_transport = False

    @classmethod
    def terminating(
        cls,
        context: ssl.SSLContext,
        on_failure: FailureHandler,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS,
    ) -> type[TlsHttpProtocol]:
        """A protocol class that runs the handshake with `context` and calls `on_failure`
        (on the event loop) with each handshake that fails."""
        termination = Termination(context, on_failure, handshake_timeout)
        return type("TerminatingTlsHttpProtocol", (cls,), {"termination": termination})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        termination = self.termination
        if termination is None:
            # TLS by uvicorn: the handshake is complete when connection_made is called.
            super().connection_made(transport)
            self._tls = tls_extension(transport)
            return
        # Registered at once, so that a shutdown reaches a connection still shaking hands.
        self.connections.add(self)
        # asyncio honours this until start_tls takes over; uvloop starts reading right
        # after connection_made whatever we ask, so `data_received` keeps what comes early.
        transport.pause_reading()
        self._raw_transport = transport
        self._handshake = self.loop.create_task(self._start_tls(transport, termination))

    async def _start_tls(self, transport: asyncio.Transport, termination: Termination) -> None:
        def handed_over() -> None:
            # start_tls has installed its TLS protocol and scheduled its connection_made
            # and resume_reading; replaying right after them (same turn of the loop, no
            # read in between) gives it the bytes that came early, in order.
            self._tls_layer_owns_transport = True
            if self._raw is not None:
                self.loop.call_soon(self._replay, transport)

        try:
            secure: asyncio.Transport | None = await _AfterFirstStep(
                self.loop.start_tls(
                    transport,
                    self,
                    termination.context,
                    server_side=True,
                    ssl_handshake_timeout=termination.handshake_timeout,
                ),
                handed_over,
            )
        except asyncio.CancelledError:
            self._abandon(transport)
            raise
        except Exception as exc:  # noqa: BLE001 - the one boundary of the handshake: abort, report
            self._abandon(transport)
            self._report(transport, exc, termination.on_failure)
            return
        finally:
            self._handshake = None
            self._raw_transport = None
        if secure is None or secure.is_closing():
            self._abandon(transport)
            return
        super().connection_made(secure)
        self._tls = tls_extension(secure)
        early, self._early = self._early, None
        if early:
            super().data_received(b"".join(early))

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            super().data_received(data)
        elif not self._tls_layer_owns_transport:
            # Raw TLS bytes before start_tls took over (uvloop): keep them, read no more.
            if self._raw is None:
                self._raw = []
                if self._raw_transport is not None:
                    self._raw_transport.pause_reading()
            self._raw.append(data)
        else:
            # The TLS layer passes on what arrived with the client's last handshake
            # message (TLS 1.3 clients send the request at once) as soon as the handshake
            # ends, before `_start_tls` resumes: keep it for the HTTP parser until then.
            if self._early is None:
                self._early = []
            self._early.append(data)

    def _replay(self, transport: asyncio.Transport) -> None:
        raw, self._raw = self._raw, None
        if raw and not transport.is_closing():
            _feed(transport.get_protocol(), b"".join(raw))

    def _abandon(self, transport: asyncio.Transport) -> None:
        self.connections.discard(self)
        transport.abort()

    def _report(
        self, transport: asyncio.Transport, error: Exception, on_failure: FailureHandler
    ) -> None:
        if not isinstance(error, ssl.SSLError | TimeoutError | ConnectionAbortedError):
            # The peer went away (reset, EOF) before the handshake ended: nothing was
            # refused, so there is nothing to report. (asyncio and uvloop raise
            # ConnectionAbortedError for a handshake that outlived its timeout.)
            return
        on_failure(
            HandshakeFailure.from_error(
                error,
                _address(transport.get_extra_info("peername")),
                _listener(transport.get_extra_info("sockname")),
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            # Lost before the handshake completed (asyncio still tells the protocol).
            self.connections.discard(self)
            return
        super().connection_lost(exc)

    def shutdown(self) -> None:
        handshake = self._handshake
        if handshake is not None:
            handshake.cancel()
            return
        if self.transport is not None:
            super().shutdown()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            # A fresh copy per request: an app must not alter what the next request sees.
            extension = dict(self._tls, client_cert_chain=list(self._tls["client_cert_chain"]))
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})["tls"] = extension


class _AfterFirstStep(Generic[_T]):
    """Await `coroutine`, calling `callback` as soon as its first step (everything it
    does before it first waits) has run, before anything else can happen on the loop."""

    def __init__(self, coroutine: Coroutine[Any, Any, _T], callback: Callable[[], None]) -> None:
        self._coroutine = coroutine
        self._callback = callback

    def __await__(self) -> Generator[Any, Any, _T]:
        coroutine = self._coroutine
        try:
            waiting = coroutine.send(None)
        except StopIteration as stop:
            return cast(_T, stop.value)
        self._callback()
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed on to the coroutine (cancel)
                try:
                    waiting = coroutine.throw(exc)
                except StopIteration as stop:
                    return cast(_T, stop.value)
            else:
                try:
                    waiting = coroutine.send(sent)
                except StopIteration as stop:
                    return cast(_T, stop.value)


def _feed(protocol: Any, data: bytes) -> None:
    """Hand `data` to `protocol` as if its transport had read it."""
    if not hasattr(protocol, "get_buffer"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


def _address(peer: Any) -> str | None:
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _listener(local: Any) -> str | None:
    if not isinstance(local, tuple) or len(local) < 2:
        return None
    host = str(local[0])
    return f"[{host}]:{local[1]}" if ":" in host else f"{host}:{local[1]}"
