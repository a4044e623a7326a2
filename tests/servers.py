"""Run an ASGI app on a real socket, in the test's own event loop.

    async with serve_asgi(app) as base_url:          # "http://127.0.0.1:<port>"
        async with httpx.AsyncClient(base_url=base_url) as client:
            ...

    async with serve_asgi(app, ssl=server_context) as base_url:   # "https://..."

The app runs under uvicorn on 127.0.0.1 with an ephemeral port, with lifespan events
("auto"), no websockets, no access log, and without touching logging configuration or
signal handlers. `ssl` is a server `ssl.SSLContext` (for example from a `trustme` CA;
set its `verify_mode` for mTLS); `http` selects uvicorn's HTTP implementation
("httptools" by default, as in production; "h11" or a protocol class also work).
Leaving the block stops the server, waiting at most a few seconds for open
connections before closing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn

__all__ = ["PromptServer", "serve_asgi"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5


class PromptServer(uvicorn.Server):
    """uvicorn for tests: leaves the runner's signal handlers alone and stops promptly.

    uvicorn notices `should_exit` on a 0.1 s tick and then pauses 0.1 s for open
    connections even when there are none; across a suite of servers started and
    stopped per test that is minutes. Here setting `should_exit` wakes the loop at once,
    and a server with no connection left skips the pause. With connections open, the
    stop is uvicorn's own.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit_requested = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            self._exit_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # A client that closed its connection just before the stop is gone in a turn or
        # two of the loop.
        for _ in range(10):
            if not (self.server_state.connections or self.server_state.tasks):
                break
            await asyncio.sleep(0.005)
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    *,
    ssl: ssl_module.SSLContext | None = None,
    http: Any = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[str]:
    """Serve `app` on `host`:<ephemeral port>; yields the base URL (no trailing slash)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=http if http is not None else "httptools",
        ws="none",
        lifespan="auto",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=_STOP_TIMEOUT,
        ssl_context_factory=(lambda _config, _default: ssl) if ssl is not None else None,
    )
    server = PromptServer(config)
    task = asyncio.create_task(_run(server, sock))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # re-raises the startup error, if there was one
                    raise RuntimeError("the test server stopped before it started")
                await asyncio.sleep(0.005)
        yield f"{'https' if ssl is not None else 'http'}://{host}:{port}"
    finally:
        if not task.done():
            await _stop(server, task)
        sock.close()


async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits the process when startup fails; in a test that must be an error.
        raise RuntimeError(f"the test server stopped before it started ({exc.code})") from exc


async def _stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    try:
        await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT * 2)
    except TimeoutError:
        server.force_exit = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
