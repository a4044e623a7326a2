"""Running the witness under uvicorn, with its own TLS when configured."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from gateway.witness.server import build_witness_app
from gateway.witness.settings import WitnessServerSettings, load_witness_signer
from gateway.witness.state import WitnessState

__all__ = ["serve_witness", "witness_config"]


def witness_config(
    settings: WitnessServerSettings, *, clock: Callable[[], float] = time.time
) -> uvicorn.Config:
    """A uvicorn config serving the witness built from `settings`."""
    app = build_witness_app(
        settings.logs,
        load_witness_signer(settings.signing_key),
        WitnessState(settings.state),
        clock=clock,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        ws="none",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(settings.certificate) if settings.certificate else None,
        ssl_keyfile=str(settings.private_key) if settings.private_key else None,
    )


def serve_witness(settings: WitnessServerSettings) -> None:
    """Serve until SIGINT or SIGTERM (then exit with status 0)."""
    server = uvicorn.Server(witness_config(settings))
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
