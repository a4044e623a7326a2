"""The inference routes (`POST /v1/chat/completions`, ...) as one plain ASGI callable.

The request walks one way: identity -> bounded body -> policy -> durable audit record ->
forward -> completion record. Any failure on the way ends in a refusal, and every
request, refused or served, leaves a record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.identity import AuthenticationError, Principal
from gateway.policy import Decision, Policy, decide
from gateway.proxy import (
    ASSERTION_HEADER,
    BodyRefused,
    ForwardResult,
    assertion_claims,
    parse_body,
    request_id_from,
    upstream_headers,
)
from gateway.quotas import Verdict
from gateway.records import completion_record, request_record
from gateway.responses import Receive, Scope, Send, model_not_found_message, send_error
from gateway.state import Gateway

INFERENCE_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}
)
WWW_AUTHENTICATE = [(b"www-authenticate", b'Bearer realm="model-gateway"')]
_CLOSE = [(b"connection", b"close")]
MAX_MODEL_ID = 256

# Upstream failures in which no model ran: a grant quota gets back what they took.
_NOT_SERVED = frozenset({"upstream.unreachable", "upstream.credential_refused"})
_DENIAL_MESSAGES = {
    "nationality_restricted": "This model is not available under your nationality attributes.",
    "grant_expired": "Your access grant for this model has ended.",
    "grant_not_yet_valid": "Your access grant for this model is not open yet.",
    "suspended": "Access is suspended.",
}


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


@dataclass(slots=True)
class _Exchange:
    """One request on its way through: what is known so far, and what was answered."""

    gateway: Gateway
    send: Send
    now: float
    request_id: str
    route: str
    client_address: str | None
    policy: Policy
    instant: datetime
    query: str | None = None
    principal: Principal | None = None
    model: str | None = None
    status: int = 0
    reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    shadow: dict[str, Any] | None = None  # the shadow policy's outcome, when it differs
    decision: Decision | None = None
    organisation: str | None = None  # the trusted one, as recorded
    # (stage, start, end) in perf_counter_ns, for metrics and traces (gateway.telemetry).
    stages: list[tuple[str, int, int]] = field(default_factory=list)

    def stage(self, name: str, since: int) -> int:
        """Note that stage `name` ran from `since` until now; returns now."""
        now = time.perf_counter_ns()
        self.stages.append((name, since, now))
        return now

    def record(
        self,
        reason: str,
        status: int | None,
        decision: Decision | None = None,
        *,
        kind: str = "request",
        request_digest: str | None = None,
        upstream_request_digest: str | None = None,
    ) -> dict[str, Any]:
        principal = None
        if self.principal is not None:
            roles = decision.roles if decision is not None else self._roles()
            principal = self.gateway.principals.get(self.principal, self.policy, roles)
            self.organisation = principal["organisation"]
        return request_record(
            kind=kind,
            now=self.now,
            request_id=self.request_id,
            route=self.route,
            client_address=self.client_address,
            principal=principal,
            model=self.model,
            decision=decision,
            reason=reason,
            status=status,
            request_digest=request_digest,
            upstream_request_digest=upstream_request_digest,
            request_bytes=self.bytes_in,
            policy_version=self.policy.version,
            query=self.query,
            shadow=self.shadow,
        )

    def trusted_organisation(self, decision: Decision) -> str | None:
        """The caller's one trusted organisation, as the record names it."""
        assert self.principal is not None
        recorded = self.gateway.principals.get(self.principal, self.policy, decision.roles)
        organisation: str | None = recorded.get("organisation")
        return organisation

    def _roles(self) -> frozenset[str]:
        assert self.principal is not None
        return decide(self.policy, self.principal, "model.list", None, self.instant).roles

    async def refuse(
        self,
        record: dict[str, Any],
        status: int,
        code: str,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Record the refusal, then answer it (or 503 if it cannot be recorded)."""
        self.reason = record["reason"]
        since = time.perf_counter_ns()
        index = await self.gateway.record(record)
        self.stage("audit", since)
        if index is None:
            await self.unavailable()
            return
        self.status = status
        self.bytes_out = await send_error(
            self.send, status, code, message, self.request_id, extra_headers=headers
        )

    async def unavailable(self) -> None:
        self.reason = "audit.unavailable"
        self.status = 503
        self.bytes_out = await send_error(
            self.send,
            503,
            "audit_unavailable",
            "The gateway cannot record requests right now; nothing was forwarded.",
            self.request_id,
        )


class InferenceEndpoint:
    """ASGI callable serving the OpenAI-compatible inference routes."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        started = time.perf_counter_ns()
        now = gateway.clock()
        client = scope.get("client")
        exchange = _Exchange(
            gateway=gateway,
            send=send,
            now=now,
            request_id=request_id_from(scope["headers"]),
            route=scope["path"],
            client_address=str(client[0]) if client else None,
            policy=gateway.policies.current,
            instant=datetime.fromtimestamp(now, UTC),
            query=scope.get("query_string", b"").decode("latin-1") or None,
        )
        try:
            await self._handle(exchange, scope, receive, started)
        except Exception as exc:  # noqa: BLE001 - one dispatch point: fail closed, answer, record
            # The type only: a message or traceback could carry request content.
            gateway.logger.error(
                "request.error", request_id=exchange.request_id, error=type(exc).__name__
            )
            if exchange.status == 0:
                record = exchange.record("gateway.error", 500)
                await exchange.refuse(
                    record, 500, "gateway_error", "The gateway failed to handle the request."
                )
        finally:
            gateway.telemetry.request(exchange, started)
            gateway.logger.info(
                "request",
                request_id=exchange.request_id,
                route=exchange.route,
                model=exchange.model,
                status=exchange.status,
                reason=exchange.reason,
                latency_ms=round((time.perf_counter_ns() - started) / 1e6, 3),
                bytes_in=exchange.bytes_in,
                bytes_out=exchange.bytes_out,
            )

    async def _handle(
        self, exchange: _Exchange, scope: Scope, receive: Receive, started: int
    ) -> None:
        gateway = self.gateway
        try:
            exchange.principal = await gateway.authenticator.authenticate(scope, now=exchange.now)
        except AuthenticationError as exc:
            exchange.stage("authentication", started)
            record = exchange.record(exc.reason, 401, kind="auth_failure")
            await exchange.refuse(
                record, 401, "unauthenticated", "Authentication failed.", WWW_AUTHENTICATE
            )
            return
        exchange.stage("authentication", started)
        if scope["method"] != "POST":
            record = exchange.record("request.method_not_allowed", 405)
            await exchange.refuse(
                record,
                405,
                "method_not_allowed",
                "This route accepts POST only.",
                [(b"allow", b"POST")],
            )
            return
        try:
            body = await read_body(scope, receive, gateway.max_body_bytes)
        except _TooLarge:
            limit = gateway.max_body_bytes
            record = exchange.record("request.too_large", 413)
            await exchange.refuse(
                record,
                413,
                "request_too_large",
                f"The request body exceeds {limit} bytes.",
                _CLOSE,
            )
            return
        except _Disconnected:
            # Nobody is left to answer, but the attempt is still recorded.
            exchange.status = 499
            exchange.reason = "client.disconnected"
            await gateway.record(exchange.record("client.disconnected", None))
            return
        exchange.bytes_in = len(body)
        request_digest = gateway.digests.digest(body)
        document, problem = _parse(body)
        if problem is not None:
            status, code, reason, message = problem
            record = exchange.record(reason, status, request_digest=request_digest)
            await exchange.refuse(record, status, code, message)
            return
        assert document is not None
        model = exchange.model = document["model"]
        since = time.perf_counter_ns()
        decision = decide(
            exchange.policy, exchange.principal, "model.invoke", model, exchange.instant
        )
        target = gateway.routes.get(model)
        if decision.allowed and target is None:
            decision = _unrouted(decision)
        exchange.decision = decision
        exchange.stage("policy", since)
        if decision.status == 401:  # credentials that disagree: refused like a failed login
            record = exchange.record(
                decision.reason, 401, decision, kind="auth_failure", request_digest=request_digest
            )
            await exchange.refuse(
                record, 401, "unauthenticated", "Authentication failed.", WWW_AUTHENTICATE
            )
            return
        if gateway.shadow is not None:  # a candidate policy, compared and never enforced
            exchange.shadow = gateway.shadow.compare(
                exchange.principal, model, exchange.instant, decision, routed=target is not None
            )
        if not decision.allowed:
            code = decision.error_code or "permission_denied"
            message = (
                model_not_found_message(model)
                if decision.status == 404
                else _DENIAL_MESSAGES.get(code, "The policy does not allow this request.")
            )
            record = exchange.record(
                decision.reason, decision.status, decision, request_digest=request_digest
            )
            await exchange.refuse(record, decision.status, code, message)
            return
        assert target is not None
        verdict = await gateway.quotas.admit(
            exchange.policy,
            decision,
            f"{exchange.principal.issuer} {exchange.principal.subject}",
            exchange.trusted_organisation(decision),
            document,
            exchange.now,
            route=exchange.route,
        )
        if not verdict.allowed:
            refused = _over_quota(decision, verdict)
            record = exchange.record(
                refused.reason, refused.status, refused, request_digest=request_digest
            )
            retry = (
                [(b"retry-after", str(verdict.retry_after).encode())]
                if verdict.retry_after
                else None
            )
            await exchange.refuse(
                record, refused.status, verdict.code or "", verdict.message(), retry
            )
            return
        forwarded, upstream_digest = body, None
        if target.upstream_model != model:
            document["model"] = target.upstream_model
            forwarded = orjson.dumps(document)
            upstream_digest = gateway.digests.digest(forwarded)
        exchange.reason = decision.reason
        since = time.perf_counter_ns()
        record = exchange.record(
            decision.reason,
            None,
            decision,
            request_digest=request_digest,
            upstream_request_digest=upstream_digest,
        )
        request_index = await gateway.record(record)
        since = exchange.stage("audit", since)
        if request_index is None:
            await gateway.quotas.release(verdict.ticket)
            await exchange.unavailable()
            return
        upstream = gateway.upstreams[target.upstream]
        headers = upstream_headers(
            scope["headers"],
            exchange.request_id,
            gateway.inbound_headers,
            client_address=exchange.client_address,
            scheme=scope.get("scheme", "http"),
        )
        if upstream.identity_assertion and gateway.assertions is not None:
            claims = assertion_claims(record, request_index)
            headers[ASSERTION_HEADER] = gateway.assertions.sign(claims, upstream.name, exchange.now)
        exchange.status = -1  # from here on the forwarder answers the caller
        result = ForwardResult(status=499, error="gateway.cancelled")
        try:
            result = await gateway.forwarder.forward(
                upstream,
                exchange.route,
                scope.get("query_string", b""),
                headers,
                forwarded,
                exchange.request_id,
                receive,
                exchange.send,
                _grant_headers(decision),
                gateway.model_rewrites.get(model),
            )
        finally:
            exchange.stage("upstream", since)
            if result.response_started:
                exchange.stages.append(("upstream_first_byte", since, result.response_started))
            # Written even when the exchange was cancelled (shutdown), and not cancelled itself.
            latency_us = (time.perf_counter_ns() - started) // 1000
            await asyncio.shield(
                gateway.record(
                    completion_record(
                        now=exchange.now + latency_us / 1e6,
                        request_id=exchange.request_id,
                        request_index=request_index,
                        route=exchange.route,
                        model=model,
                        result=result,
                        latency_us=latency_us,
                    )
                )
            )
            if result.error in _NOT_SERVED:  # the upstream did no work: charge nothing
                await asyncio.shield(gateway.quotas.release(verdict.ticket))
            else:
                await asyncio.shield(gateway.quotas.settle(verdict.ticket, result.usage))
        exchange.status = result.status
        exchange.bytes_out = result.response_bytes
        if result.error is not None:
            exchange.reason = result.error
            if result.error_type is not None:
                gateway.logger.warning(
                    "upstream.failed",
                    request_id=exchange.request_id,
                    error=result.error,
                    error_type=result.error_type,
                )


def _parse(body: bytes) -> tuple[dict[str, Any] | None, tuple[int, str, str, str] | None]:
    """The decoded body with its model id, or the problem that stops the request."""
    try:
        document = parse_body(body)
    except BodyRefused as exc:
        return None, (400, "invalid_json", exc.reason, exc.message)
    model = document.get("model")
    if isinstance(model, str) and len(model) > MAX_MODEL_ID:
        return None, (
            404,
            "model_not_found",
            "request.model_id_too_long",
            f"Model ids are at most {MAX_MODEL_ID} characters.",
        )
    if not isinstance(model, str) or not model:
        return None, (
            404,
            "model_not_found",
            "request.missing_model",
            "The request names no model; set the 'model' field.",
        )
    return document, None


def _over_quota(decision: Decision, verdict: Verdict) -> Decision:
    """The policy's allowance, overruled by a rate limit or an exhausted quota."""
    return replace(
        decision,
        allowed=False,
        reason=verdict.reason or "quota.refused",
        status=verdict.status,
        error_code=verdict.code,
        rules=(*decision.rules, f"quota:{verdict.reason}"),
    )


def _unrouted(decision: Decision) -> Decision:
    """A model the policy allows but no upstream serves is refused as unknown."""
    return replace(
        decision,
        allowed=False,
        reason="model.unrouted",
        status=404,
        error_code="model_not_found",
        grant_id=None,
        grant_not_after=None,
    )


def _grant_headers(decision: Decision) -> list[tuple[bytes, bytes]] | None:
    if decision.grant_id is None or decision.grant_not_after is None:
        return None
    ends = decision.grant_not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        (b"x-gateway-grant", decision.grant_id.encode()),
        (b"x-gateway-grant-not-after", ends.encode()),
    ]
