"""Forwarding one request to its upstream and streaming the answer back, over plain ASGI.

A plain ASGI path (not Starlette's StreamingResponse) keeps the per-chunk cost low. While
the upstream works, a watcher waits for the caller's `http.disconnect`; when it comes,
the upstream request is cancelled and the result says the stream was aborted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from gateway.proxy._headers import client_headers
from gateway.proxy._rewrite import ModelRewrite, ModelRewriteStream
from gateway.proxy._upstream import UpstreamPool, UpstreamSettings
from gateway.proxy._usage import JsonUsage, StreamUsage, Usage, usage_from_json
from gateway.responses import Receive, Send, send_error

# A JSON response larger than this (or of unknown length) is relayed as it comes, and its
# usage read as it passes; a smaller one is read whole and sent with its length.
_READ_WHOLE_LIMIT = 8 << 20
# How long an exchange runs before a task starts watching for the caller's disconnect.
WATCH_AFTER = 0.05


class IncrementalDigest(Protocol):
    def update(self, data: bytes) -> None: ...

    def hexdigest(self) -> str: ...


class DigestFactory(Protocol):
    def incremental(self) -> IncrementalDigest: ...


@dataclass(slots=True)
class ForwardResult:
    """What happened on the way to the upstream and back.

    `error` is None on success, else one of `upstream.unreachable`, `upstream.timeout`,
    `upstream.reset` (the upstream broke off mid-response) or `client.disconnected`.
    `stream` is `completed` / `aborted` for event streams and None otherwise.
    """

    status: int
    upstream_status: int | None = None
    response_bytes: int = 0
    response_digest: str | None = None
    usage: Usage | None = None
    stream: str | None = None
    error: str | None = None
    upstream_latency_us: int = 0
    # The failure's class name (`ClientConnectorError`, `ServerDisconnectedError`, ...), for
    # the log line: never a message, which could quote the upstream's URL or reply.
    error_type: str | None = None
    # perf_counter_ns when the upstream's response headers arrived (0: they never did).
    response_started: int = 0


class Forwarder:
    """Sends requests through an `UpstreamPool` and relays responses to the caller."""

    def __init__(self, pool: UpstreamPool, digests: DigestFactory | None = None) -> None:
        self.pool = pool
        self.digests = digests

    async def forward(
        self,
        upstream: UpstreamSettings,
        path: str,
        query: bytes,
        headers: dict[str, str],
        body: bytes,
        request_id: str,
        receive: Receive,
        send: Send,
        response_headers: list[tuple[bytes, bytes]] | None = None,
        model_rewrite: ModelRewrite | None = None,
    ) -> ForwardResult:
        """Forward `body` to `upstream` at `path` (below /v1) and relay the response,
        with the upstream's model name replaced by the public id if `model_rewrite`."""
        url = upstream.base_url + path[3:]
        if query:
            url += "?" + query.decode("latin-1")
        headers.update(upstream.credential_headers())
        result = ForwardResult(status=0)
        task = asyncio.current_task()
        assert task is not None
        state = _Watch(receive, task)
        # Most exchanges with a fast upstream end before anyone could hang up; only one
        # still running after WATCH_AFTER gets a task waiting for the caller's disconnect.
        timer = task.get_loop().call_later(WATCH_AFTER, state.start)
        started = time.perf_counter_ns()
        try:
            await self._exchange(
                upstream,
                url,
                headers,
                body,
                request_id,
                send,
                response_headers,
                result,
                state,
                model_rewrite,
            )
        except asyncio.CancelledError:
            if not state.disconnected or task.uncancel() > 0:
                raise  # not ours (shutdown): let it through
            result.error = "client.disconnected"
            if result.stream == "completed":
                result.stream = "aborted"
            if result.status == 0:
                result.status = 499
        except Exception:  # noqa: BLE001 - one dispatch point: whatever broke, the caller gets an answer
            result.error = "gateway.error"
            if result.stream == "completed":
                result.stream = "aborted"
            if result.status == 0:
                state.finished = True
                result.status = 502
                result.response_bytes = await send_error(
                    send,
                    502,
                    "gateway_error",
                    "The gateway could not relay the response.",
                    request_id,
                )
        finally:
            state.finished = True
            timer.cancel()
            if state.watcher is not None:
                state.watcher.cancel()
            result.upstream_latency_us = (time.perf_counter_ns() - started) // 1000
        return result

    async def _exchange(
        self,
        upstream: UpstreamSettings,
        url: str,
        headers: dict[str, str],
        body: bytes,
        request_id: str,
        send: Send,
        extra: list[tuple[bytes, bytes]] | None,
        result: ForwardResult,
        state: _Watch,
        model_rewrite: ModelRewrite | None,
    ) -> None:
        session = self.pool.session(upstream.name)
        hidden = _secrets(upstream)
        try:
            # Never follow a redirect: it would take the prompt and the credential elsewhere.
            response = await session.post(url, data=body, headers=headers, allow_redirects=False)
            result.response_started = time.perf_counter_ns()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            result.status = 504
            result.error = "upstream.timeout"
            state.finished = True
            result.response_bytes = await send_error(
                send, 504, "upstream_timeout", "The upstream model server timed out.", request_id
            )
            return
        except aiohttp.ClientError as exc:
            result.status = 502
            result.error = "upstream.unreachable"
            result.error_type = type(exc).__name__
            state.finished = True
            result.response_bytes = await send_error(
                send,
                502,
                "upstream_unreachable",
                "The upstream model server is unreachable.",
                request_id,
            )
            return
        async with response:
            result.upstream_status = response.status
            if response.status in _GATEWAY_CREDENTIAL_REFUSED:
                # The caller's credentials never reach the upstream, so a 401 or 407 is
                # about the gateway's own: not the caller's to fix, and not to be read as
                # "your credential is wrong".
                state.finished = True
                result.status = 502
                result.error = "upstream.credential_refused"
                result.response_bytes = await send_error(
                    send,
                    502,
                    "upstream_credential_refused",
                    "The upstream model server refused the gateway's own credentials"
                    " (a gateway configuration problem, not your request).",
                    request_id,
                )
                return
            out_headers = client_headers(response.raw_headers, request_id.encode(), hidden)
            if extra:
                out_headers.extend(extra)
            content_type = response.headers.get("content-type", "")
            length = response.content_length
            digest = self.digests.incremental() if self.digests else None
            if "text/event-stream" not in content_type and (
                length is not None and length <= _READ_WHOLE_LIMIT
            ):
                try:
                    data = await response.read()
                except (TimeoutError, aiohttp.ClientError):
                    state.finished = True
                    await self._fail_before_start(send, request_id, result)
                    return
                if "json" in content_type:
                    result.usage = usage_from_json(data)
                if model_rewrite is not None:
                    data = (
                        model_rewrite.rewrite(data)
                        if response.status < 400
                        else model_rewrite.rewrite_error(data)
                    )
                out_headers.append((b"content-length", str(len(data)).encode()))
                result.status = response.status
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": out_headers,
                    }
                )
                state.finished = True
                await send({"type": "http.response.body", "body": data})
                result.response_bytes = len(data)
                if digest is not None:
                    digest.update(data)
                    result.response_digest = digest.hexdigest()
                return
            rewriting = model_rewrite.stream() if model_rewrite is not None else None
            await self._relay_stream(
                response, out_headers, content_type, send, result, digest, state, rewriting
            )

    async def _relay_stream(
        self,
        response: aiohttp.ClientResponse,
        out_headers: list[tuple[bytes, bytes]],
        content_type: str,
        send: Send,
        result: ForwardResult,
        digest: IncrementalDigest | None,
        state: _Watch,
        rewriting: ModelRewriteStream | None,
    ) -> None:
        is_events = "text/event-stream" in content_type
        usage: StreamUsage | JsonUsage | None = None
        if is_events:
            usage = StreamUsage()
        elif "json" in content_type:
            usage = JsonUsage()
        result.status = response.status
        result.stream = "completed" if is_events else None
        await send(
            {"type": "http.response.start", "status": response.status, "headers": out_headers}
        )
        sent = 0
        try:
            async for received in response.content.iter_any():
                if usage is not None:
                    usage.feed(received)
                chunk = rewriting.feed(received) if rewriting is not None else received
                if not chunk:
                    continue  # all held back: a model member cut in two
                sent += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, aiohttp.ClientError):
            # The upstream broke off: end our response so the caller sees a short stream.
            result.error = "upstream.reset"
            if is_events:
                result.stream = "aborted"
        finally:
            tail = rewriting.flush() if rewriting is not None else b""
            if tail:
                sent += len(tail)
                if digest is not None:
                    digest.update(tail)
            result.response_bytes = sent
            if digest is not None:
                result.response_digest = digest.hexdigest()
            # A JSON answer cut short is not the upstream's account of the request.
            if usage is not None and (is_events or result.error is None):
                result.usage = usage.usage
        state.finished = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    @staticmethod
    async def _fail_before_start(send: Send, request_id: str, result: ForwardResult) -> None:
        result.status = 502
        result.error = "upstream.reset"
        result.response_bytes = await send_error(
            send,
            502,
            "upstream_reset",
            "The upstream model server broke off its response.",
            request_id,
        )


# Statuses by which an upstream refuses the gateway's credential (or its assertion).
_GATEWAY_CREDENTIAL_REFUSED = frozenset({401, 407})


class _Watch:
    """Cancels the forwarding task if the caller goes away before the response is complete.

    `finished` is set just before the last message of the response is sent: uvicorn
    reports `http.disconnect` to `receive()` once a response is complete, which is not
    the caller leaving.
    """

    __slots__ = ("disconnected", "finished", "receive", "task", "watcher")

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self.receive = receive
        self.task = task
        self.disconnected = False
        self.finished = False
        self.watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self.finished:
            self.watcher = self.task.get_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.finished:
                    self.disconnected = True
                    self.task.cancel()
                return


def _secrets(upstream: UpstreamSettings) -> frozenset[bytes]:
    if upstream.credential is None:
        return frozenset()
    return frozenset({upstream.credential.encode()})
