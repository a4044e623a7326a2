"""Running the app under uvicorn (httptools + uvloop), with the gateway's own TLS.

uvicorn is told not to trust X-Forwarded-* headers: the client address decides whether a
forwarded client certificate is believed, so nobody may rewrite it by sending a header.
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
    context = (
        build_server_ssl_context(settings.tls, settings.identity) if settings.tls.enabled else None
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=TlsHttpProtocol if settings.tls.enabled else "httptools",
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
        ssl_context_factory=(lambda _config, _default: context) if context is not None else None,
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
