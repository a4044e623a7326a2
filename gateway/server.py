"""Running the app under uvicorn (httptools + uvloop), with the gateway's own TLS.

uvicorn is told not to trust X-Forwarded-* headers: the client address decides whether a
forwarded client certificate is believed, so nobody may rewrite it by sending a header.

With TLS, uvicorn serves plain TCP and the gateway's protocol runs each handshake
itself (`TlsHttpProtocol.terminating`), so that a refused handshake leaves a log line
and a `tls_failure` record instead of vanishing at asyncio's debug level.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from gateway.app import build_app
from gateway.identity import TlsHttpProtocol, build_server_ssl_context
from gateway.settings import Settings


def uvicorn_config(
    settings: Settings, *, clock: Callable[[], float] = time.time, log_level: str = "warning"
) -> uvicorn.Config:
    """A loaded uvicorn config that serves the gateway built from `settings`."""
    app = build_app(settings, clock=clock)
    http: type[TlsHttpProtocol] | str = "httptools"
    if settings.tls.enabled:
        http = TlsHttpProtocol.terminating(
            build_server_ssl_context(settings.tls, settings.identity),
            app.handshakes.report,
            settings.tls.handshake_timeout_seconds,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        loop="uvloop",
        lifespan="on",
        # No WebSocket upgrades: such a request reaches the app as plain HTTP, where it is
        # authenticated, refused and recorded like any other.
        ws="none",
        access_log=False,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_graceful_shutdown=10,
    )
    config.load()
    return config


def serve(settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve until SIGINT or SIGTERM; the lifespan signs a final audit checkpoint."""
    server = uvicorn.Server(uvicorn_config(settings))
    # uvicorn raises the signal that stopped it again once it has shut down. By then the
    # shutdown was orderly (final checkpoint signed), so SIGTERM ends with status 0.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
