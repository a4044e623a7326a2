"""A stand-in for an OpenAI-compatible inference server: the demo upstream.

This is NOT a model and produces no real completions. It exists so that the gateway
can be demonstrated, tested and benchmarked without a GPU: a small, fast,
deterministic plain ASGI app that answers in the shapes the OpenAI API uses. Every
answer says where it came from: `system_fingerprint` is ``"demo-upstream"`` and
`/v1/models` lists models `owned_by` ``"demo-upstream"``.

Endpoints: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses``; ``GET /v1/models``, ``/v1/models/{id}``; ``GET /healthz``.
Any model name is served; `/v1/models` lists the configured names.

Output is derived from the input only: the reply is a fixed sentence cycled to
`chunks` words (20 by default) ending in a digest of the prompt; an embedding comes
from SHA-256 of its input. `usage` counts whitespace-separated words: deterministic,
and deliberately not a real tokenisation. Streams (``"stream": true``) send one word
per chunk; ``stream_options.include_usage`` adds the final usage chunk, as OpenAI does.

Test controls travel in the request body under the extra key ``"demo"``::

    {"demo": {"status": 503, "delay": 0.5, "chunks": 20, "chunk_delay": 0.01,
              "abort_after": 5}}

`status` answers with that error status (OpenAI error shape); `delay` sleeps before
answering; `chunks` is the number of words (stream chunks); `chunk_delay` sleeps
between chunks; `abort_after` drops the connection after that many stream chunks,
as a crashing server would.

With an `AssertionCheck` (command line: `--assertion-audience` and `--assertion-jwks`),
every inference request must carry a valid `x-gateway-assertion` for this upstream:
a missing, forged, expired, replayed or other upstream's assertion gets 401, and the
claims of a valid one are kept with the request (`SeenRequest.assertion`).

Errors:

    DemoRequestError    a request the demo cannot answer; it becomes a 4xx reply
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.arguments import port
from gateway.demo import _upstream_replies as replies
from gateway.demo._assertions import AssertionCheck, assertion_check
from gateway.demo._options import add_assertion_arguments
from gateway.demo._upstream_replies import FINGERPRINT, Controls, DemoRequestError, Reply

__all__ = [
    "AssertionCheck",
    "DemoRequestError",
    "DemoUpstream",
    "SeenRequest",
    "create_app",
    "main",
]

DEFAULT_MODELS = ("demo-model",)

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_STREAM_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(slots=True)
class SeenRequest:
    """One request as the demo upstream received it (header names lower-cased)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    completed: bool = False
    cancelled: bool = False
    assertion: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


class DemoUpstream:
    """The ASGI callable; `log` keeps the last `log_limit` requests when `record` is on."""

    def __init__(
        self,
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        api_key: str | None = None,
        record: bool = True,
        log_limit: int = 10_000,
        clock: Callable[[], float] = time.time,
        assertion: AssertionCheck | None = None,
    ) -> None:
        self.models = tuple(models)
        self.assertion = assertion
        self.record = record
        self.log_limit = log_limit
        self.log: list[SeenRequest] = []
        self._expected_authorization = f"Bearer {api_key}".encode() if api_key else None
        self._clock = clock
        self._posts: dict[str, Callable[[dict[str, Any], Controls, float], Reply]] = {
            "/v1/chat/completions": replies.chat,
            "/v1/completions": replies.completion,
            "/v1/embeddings": replies.embeddings,
            "/v1/responses": replies.responses,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        seen = self._remember(scope, body)
        try:
            await self._handle(scope, body, receive, send, seen)
        except asyncio.CancelledError:
            seen.cancelled = True
            raise

    def _remember(self, scope: Scope, body: bytes) -> SeenRequest:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        seen = SeenRequest(scope["method"], scope["path"], headers, body)
        if self.record:
            self.log.append(seen)
            if len(self.log) > self.log_limit:
                del self.log[: len(self.log) - self.log_limit]
        return seen

    async def _handle(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, seen: SeenRequest
    ) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/healthz" and method == "GET":
            await _send_json(send, 200, {"status": "ok", "system_fingerprint": FINGERPRINT})
            seen.completed = True
            return
        try:
            self._authorize(scope)
            if path in self._posts:
                if method != "POST":
                    raise DemoRequestError(405, f"Method {method} is not allowed on {path}.")
                if self.assertion is not None:
                    seen.assertion = await self.assertion.verify(scope["headers"])
                request = replies.parse_json(body)
                controls = replies.parse_controls(request.get("demo"))
                reply = self._posts[path](request, controls, self._clock())
            elif path == "/v1/models" or path.startswith("/v1/models/"):
                if method != "GET":
                    raise DemoRequestError(405, f"Method {method} is not allowed on {path}.")
                controls, reply = Controls(), Reply(body=replies.model_listing(self.models, path))
            else:
                raise DemoRequestError(404, "Unknown path.")
        except DemoRequestError as error:
            await _send_json(
                send, error.status, replies.error_body(error.status, error.message, error.param)
            )
            seen.completed = True
            return
        await self._answer(reply, controls, receive, send, seen)

    def _authorize(self, scope: Scope) -> None:
        if self._expected_authorization is None:
            return
        presented = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
        if not hmac.compare_digest(presented, self._expected_authorization):
            raise DemoRequestError(401, "Incorrect or missing API key.")

    async def _answer(
        self, reply: Reply, controls: Controls, receive: Receive, send: Send, seen: SeenRequest
    ) -> None:
        disconnected = asyncio.Event()
        watch_needed = reply.events is not None or controls.delay > 0
        watcher = asyncio.create_task(_watch(receive, disconnected)) if watch_needed else None
        try:
            if await _pause(controls.delay, disconnected):
                seen.cancelled = True
                return
            if controls.status is not None:
                message = f"The demo upstream was asked to fail with status {controls.status}."
                await _send_json(
                    send, controls.status, replies.error_body(controls.status, message)
                )
            elif reply.events is None:
                await _send_json(send, 200, reply.body or {})
            else:
                outcome = await _stream(reply.events, controls, send, disconnected)
                seen.cancelled = outcome == "cancelled"
                seen.completed = outcome == "completed"
                return
            seen.completed = True
        finally:
            if watcher is not None:
                watcher.cancel()


def create_app(
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    api_key: str | None = None,
    record: bool = True,
    log_limit: int = 10_000,
    clock: Callable[[], float] = time.time,
    assertion: AssertionCheck | None = None,
) -> DemoUpstream:
    """Build the demo upstream; with `api_key`, only ``Bearer <api_key>`` is accepted, with
    `assertion`, only requests carrying a valid identity assertion."""
    return DemoUpstream(
        models=models,
        api_key=api_key,
        record=record,
        log_limit=log_limit,
        clock=clock,
        assertion=assertion,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m gateway.demo.upstream`."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.demo.upstream",
        description="Stand-in OpenAI-compatible server (not a model) for demos and benchmarks.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=port, default=9000, help="port to listen on (default: 9000)")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="a model name to list (repeatable; default: demo-model)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="accept only 'Authorization: Bearer <key>', key read from env var NAME",
    )
    add_assertion_arguments(parser)
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the clock this far from real time (the demo's AT= clock; default 0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo upstream under uvicorn (httptools, uvloop); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"environment variable {args.api_key_env} is not set or empty", file=sys.stderr)
            return 2
    offset: float = args.clock_offset

    def clock() -> float:
        return time.time() + offset

    try:
        check = assertion_check(args, clock)
    except (ValueError, OSError) as exc:
        print(f"demo upstream: {exc}", file=sys.stderr)
        return 2
    import uvicorn  # only the command line needs the server

    # The command line has no reader for the request log, so it does not record.
    app = create_app(
        models=args.models or DEFAULT_MODELS,
        api_key=api_key,
        record=False,
        clock=clock,
        assertion=check,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
    )
    return 0


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _watch(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def _pause(seconds: float, disconnected: asyncio.Event) -> bool:
    """Sleep `seconds` unless the client goes away first; True if it went away."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(disconnected.wait(), seconds)
    return disconnected.is_set()


async def _stream(
    events: list[bytes], controls: Controls, send: Send, disconnected: asyncio.Event
) -> str:
    """Send `events` as a stream: "completed", "cancelled" (client went away) or "aborted"."""
    await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
    for index, event in enumerate(events):
        if controls.abort_after is not None and index >= controls.abort_after:
            # Returning without the final body message makes the server drop the connection.
            return "aborted"
        if disconnected.is_set():
            return "cancelled"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if index < len(events) - 1 and await _pause(controls.chunk_delay, disconnected):
            return "cancelled"
    await asyncio.sleep(0)  # let a pending disconnect be seen before the stream is closed
    if disconnected.is_set():
        return "cancelled"
    # After the last message the server reports "disconnect" for any finished response.
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return "completed"


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


if __name__ == "__main__":
    sys.exit(main())
