"""The inference routes (`POST /v1/chat/completions`, ...) as one plain ASGI callable.

The request walks one way: identity -> bounded body -> policy -> durable audit record ->
forward -> completion record. Any failure on the way ends in a refusal, and every
request, refused or served, leaves a record.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from gateway.identity import AuthenticationError, Principal
from gateway.policy import Decision, decide
from gateway.proxy import request_id_from, upstream_headers
from gateway.records import completion_record, principal_json, request_record
from gateway.responses import (
    Receive,
    Scope,
    Send,
    model_not_found_message,
    send_error,
)
from gateway.state import Gateway

INFERENCE_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}
)
WWW_AUTHENTICATE = [(b"www-authenticate", b'Bearer realm="model-gateway"')]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (without reading it all) one larger than `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise _TooLarge
            except ValueError:
                raise _TooLarge from None
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class InferenceEndpoint:
    """ASGI callable serving the OpenAI-compatible inference routes."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        started = time.perf_counter_ns()
        now = gateway.clock()
        request_id = request_id_from(scope["headers"])
        route = scope["path"]
        outcome: dict[str, Any] = {"status": 0, "model": None, "reason": None, "bytes_out": 0}
        try:
            await self._handle(scope, receive, send, now, request_id, route, outcome)
        finally:
            gateway.logger.info(
                "request",
                request_id=request_id,
                route=route,
                model=outcome["model"],
                status=outcome["status"],
                reason=outcome["reason"],
                latency_ms=round((time.perf_counter_ns() - started) / 1e6, 3),
                bytes_in=outcome.get("bytes_in", 0),
                bytes_out=outcome["bytes_out"],
            )

    async def _refuse(
        self,
        send: Send,
        outcome: dict[str, Any],
        status: int,
        code: str,
        message: str,
        request_id: str,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        outcome["status"] = status
        outcome["bytes_out"] = await send_error(
            send, status, code, message, request_id, extra_headers=extra_headers
        )

    async def _unavailable(self, send: Send, outcome: dict[str, Any], request_id: str) -> None:
        outcome["reason"] = "audit.unavailable"
        await self._refuse(
            send,
            outcome,
            503,
            "audit_unavailable",
            "The gateway cannot record requests right now; nothing was forwarded.",
            request_id,
        )

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        now: float,
        request_id: str,
        route: str,
        outcome: dict[str, Any],
    ) -> None:
        gateway = self.gateway
        started = time.perf_counter_ns()
        client_address = _client_address(scope)
        if scope["method"] != "POST":
            await self._refuse(
                send,
                outcome,
                405,
                "method_not_allowed",
                "This route accepts POST only.",
                request_id,
                [(b"allow", b"POST")],
            )
            return
        try:
            principal = await gateway.authenticator.authenticate(scope, now=now)
        except AuthenticationError as exc:
            outcome["reason"] = exc.reason
            record = request_record(
                kind="auth_failure",
                now=now,
                request_id=request_id,
                route=route,
                client_address=client_address,
                principal=None,
                model=None,
                decision=None,
                reason=exc.reason,
                status=401,
                request_digest=None,
                policy_version=gateway.policies.current.version,
            )
            if await gateway.record(record) is None:
                await self._unavailable(send, outcome, request_id)
                return
            await self._refuse(
                send,
                outcome,
                401,
                "unauthenticated",
                "Authentication failed.",
                request_id,
                WWW_AUTHENTICATE,
            )
            return
        policy = gateway.policies.current
        instant = datetime.fromtimestamp(now, UTC)
        try:
            body = await read_body(scope, receive, gateway.max_body_bytes)
        except _TooLarge:
            await self._deny_request(
                send,
                outcome,
                now,
                request_id,
                route,
                client_address,
                principal,
                policy,
                None,
                413,
                "request_too_large",
                "request.too_large",
                f"The request body exceeds {gateway.max_body_bytes} bytes.",
                None,
                0,
                instant,
                [(b"connection", b"close")],
            )
            return
        except _Disconnected:
            outcome["reason"] = "client.disconnected"
            outcome["status"] = 499
            return
        outcome["bytes_in"] = len(body)
        request_digest = gateway.digests.digest(body)
        model, document, problem = _parse(body)
        if problem is not None:
            status, code, reason, message = problem
            await self._deny_request(
                send,
                outcome,
                now,
                request_id,
                route,
                client_address,
                principal,
                policy,
                model,
                status,
                code,
                reason,
                message,
                request_digest,
                len(body),
                instant,
            )
            return
        assert model is not None
        assert document is not None
        outcome["model"] = model
        decision = decide(policy, principal, "model.invoke", model, instant)
        target = gateway.routes.get(model)
        if decision.allowed and target is None:
            decision = _unrouted(decision)
        principal_record = principal_json(principal, policy, decision.roles)
        if not decision.allowed:
            outcome["reason"] = decision.reason
            status = decision.status
            code = decision.error_code or "permission_denied"
            message = model_not_found_message(model) if status == 404 else _denial_message(code)
            record = request_record(
                now=now,
                request_id=request_id,
                route=route,
                client_address=client_address,
                principal=principal_record,
                model=model,
                decision=decision,
                reason=decision.reason,
                status=status,
                request_digest=request_digest,
                request_bytes=len(body),
            )
            if await gateway.record(record) is None:
                await self._unavailable(send, outcome, request_id)
                return
            await self._refuse(send, outcome, status, code, message, request_id)
            return
        assert target is not None
        forwarded = body
        upstream_digest = None
        if target.upstream_model != model:
            document["model"] = target.upstream_model
            forwarded = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            upstream_digest = gateway.digests.digest(forwarded)
        record = request_record(
            now=now,
            request_id=request_id,
            route=route,
            client_address=client_address,
            principal=principal_record,
            model=model,
            decision=decision,
            reason=decision.reason,
            status=None,
            request_digest=request_digest,
            request_bytes=len(body),
            upstream_request_digest=upstream_digest,
        )
        request_index = await gateway.record(record)
        if request_index is None:
            await self._unavailable(send, outcome, request_id)
            return
        outcome["reason"] = decision.reason
        extra = _grant_headers(decision)
        headers = upstream_headers(scope["headers"], request_id)
        upstream = gateway.upstreams[target.upstream]
        query = scope.get("query_string", b"")
        result = await gateway.forwarder.forward(
            upstream, route, query, headers, forwarded, request_id, receive, send, extra
        )
        outcome["status"] = result.status
        outcome["bytes_out"] = result.response_bytes
        if result.error is not None:
            outcome["reason"] = result.error
        latency_us = (time.perf_counter_ns() - started) // 1000
        await gateway.record(
            completion_record(
                now=now + latency_us / 1e6,
                request_id=request_id,
                request_index=request_index,
                route=route,
                model=model,
                result=result,
                latency_us=latency_us,
            )
        )

    async def _deny_request(
        self,
        send: Send,
        outcome: dict[str, Any],
        now: float,
        request_id: str,
        route: str,
        client_address: str | None,
        principal: Principal,
        policy: Any,
        model: str | None,
        status: int,
        code: str,
        reason: str,
        message: str,
        request_digest: str | None,
        request_bytes: int,
        instant: datetime,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Refuse a malformed request, after recording it."""
        outcome["reason"] = reason
        roles = decide(policy, principal, "model.list", None, instant).roles
        record = request_record(
            now=now,
            request_id=request_id,
            route=route,
            client_address=client_address,
            principal=principal_json(principal, policy, roles),
            model=model,
            decision=None,
            reason=reason,
            status=status,
            request_digest=request_digest,
            request_bytes=request_bytes,
            policy_version=policy.version,
        )
        if await self.gateway.record(record) is None:
            await self._unavailable(send, outcome, request_id)
            return
        if code == "model_not_found" and model is not None:
            message = model_not_found_message(model)
        await self._refuse(send, outcome, status, code, message, request_id, extra_headers)


def _parse(
    body: bytes,
) -> tuple[str | None, dict[str, Any] | None, tuple[int, str, str, str] | None]:
    """The model id and decoded body, or the problem that stops the request."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return (
            None,
            None,
            (400, "invalid_json", "request.invalid_json", "The request body is not valid JSON."),
        )
    if not isinstance(document, dict):
        return (
            None,
            None,
            (
                400,
                "invalid_json",
                "request.invalid_json",
                "The request body must be a JSON object.",
            ),
        )
    model = document.get("model")
    if not isinstance(model, str) or not model:
        return (
            None,
            None,
            (
                404,
                "model_not_found",
                "request.missing_model",
                "The request names no model; set the 'model' field.",
            ),
        )
    return model, document, None


def _unrouted(decision: Decision) -> Decision:
    """A model the policy allows but no upstream serves is refused as unknown."""
    from dataclasses import replace

    return replace(
        decision,
        allowed=False,
        reason="model.unrouted",
        status=404,
        error_code="model_not_found",
        grant_id=None,
        grant_not_after=None,
    )


_DENIAL_MESSAGES = {
    "nationality_restricted": "This model is not available under your nationality attributes.",
    "grant_expired": "Your access grant for this model has ended.",
    "grant_not_yet_valid": "Your access grant for this model is not open yet.",
    "suspended": "Access is suspended.",
}


def _denial_message(code: str) -> str:
    return _DENIAL_MESSAGES.get(code, "The policy does not allow this request.")


def _grant_headers(decision: Decision) -> list[tuple[bytes, bytes]] | None:
    if decision.grant_id is None or decision.grant_not_after is None:
        return None
    ends = decision.grant_not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        (b"x-gateway-grant", decision.grant_id.encode()),
        (b"x-gateway-grant-not-after", ends.encode()),
    ]
