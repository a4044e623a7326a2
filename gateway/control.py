"""The control routes: health, readiness, the model list, whoami and the auditor API.

Everything under /v1 authenticates the caller and leaves an audit record, like the
inference routes; /healthz and /readyz are for the orchestrator and carry no identity.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.identity import AuthenticationError, Principal
from gateway.inference import WWW_AUTHENTICATE
from gateway.instants import format_instant
from gateway.policy import decide, model_windows, visible_models
from gateway.proxy import request_id_from
from gateway.readiness import audit_lag
from gateway.records import request_record
from gateway.responses import Receive, Scope, Send, error_body, model_not_found_message
from gateway.state import Gateway
from gateway.workers import worker_identity


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    response = Response(
        error_body(status, code, message, request_id),
        status_code=status,
        media_type="application/json",
    )
    response.headers["x-request-id"] = request_id
    for name, value in headers or []:
        response.headers[name.decode()] = value.decode()
    return response


def json_response(data: Any, request_id: str, status: int = 200) -> Response:
    response = JSONResponse(data, status_code=status)
    response.headers["x-request-id"] = request_id
    return response


class Call:
    """One authenticated control-plane call: who, under which policy, and its record."""

    def __init__(self, request: Request, kind: str) -> None:
        self.request = request
        self.gateway = _gateway(request)
        self.kind = kind
        self.request_id = request_id_from(request.scope["headers"])
        self.now = self.gateway.clock()
        self.started = time.perf_counter_ns()
        self.instant = datetime.fromtimestamp(self.now, UTC)
        self.policy = self.gateway.policies.current
        self.principal: Principal | None = None
        self.roles: frozenset[str] = frozenset()

    async def authenticate(self, method: str | tuple[str, ...] = "GET") -> Response | None:
        """Authenticate and check the method (one, or those the route accepts); on
        failure record it and return the 401, 405 (or 503) to send."""
        methods = (method,) if isinstance(method, str) else method
        accepted = (*methods, "HEAD") if "GET" in methods else methods
        try:
            self.principal = await self.gateway.authenticator.authenticate(
                self.request.scope, now=self.now
            )
        except AuthenticationError as exc:
            return await self._unauthenticated(exc.reason)
        # Credentials that disagree (identity.conflict) are refused like a failed login.
        first = decide(self.policy, self.principal, "model.list", None, self.instant)
        if first.status == 401:
            return await self._unauthenticated(first.reason, first.rules)
        if self.request.method not in accepted:
            listed = ", ".join(accepted)
            return await self.finish(
                None,
                "deny",
                "request.method_not_allowed",
                405,
                response=error_response(
                    405,
                    "method_not_allowed",
                    f"This route accepts {' or '.join(methods)} only.",
                    self.request_id,
                    [(b"allow", listed.encode())],
                ),
            )
        return None

    async def _unauthenticated(self, reason: str, rules: tuple[str, ...] = ()) -> Response:
        return await self.finish(
            None,
            "deny",
            reason,
            401,
            kind="auth_failure",
            rules=rules,
            response=error_response(
                401, "unauthenticated", "Authentication failed.", self.request_id, WWW_AUTHENTICATE
            ),
        )

    async def finish(
        self,
        model: str | None,
        decision: str,
        reason: str,
        status: int,
        *,
        response: Response,
        kind: str | None = None,
        roles: frozenset[str] = frozenset(),
        rules: tuple[str, ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> Response:
        """Record the call, then hand back `response` (or a 503 if it can't be recorded)."""
        client = self.request.scope.get("client")
        record = request_record(
            kind=kind or self.kind,
            now=self.now,
            request_id=self.request_id,
            route=self.request.url.path,
            client_address=str(client[0]) if client else None,
            principal=(
                self.gateway.principals.get(self.principal, self.policy, roles)
                if self.principal is not None
                else None
            ),
            model=model,
            decision=None,
            reason=reason,
            status=status,
            request_digest=None,
            policy_version=self.policy.version,
            query=self.request.url.query or None,
        )
        record["decision"] = decision
        record["rules"] = list(rules)
        if detail:
            record["detail"] = detail
        if await self.gateway.record(record) is None:
            reason, response = (
                "audit.unavailable",
                error_response(
                    503,
                    "audit_unavailable",
                    "The gateway cannot record requests right now.",
                    self.request_id,
                ),
            )
        # The route's template (`/v1/models/{model:path}`), never the path a caller sent.
        route = getattr(self.request.scope.get("route"), "path", None)
        self.gateway.telemetry.call(route, response.status_code, reason)
        self.gateway.logger.info(
            "request",
            request_id=self.request_id,
            route=self.request.url.path,
            model=model,
            status=response.status_code,
            reason=reason,
            latency_ms=round((time.perf_counter_ns() - self.started) / 1e6, 3),
            bytes_out=len(response.body) if hasattr(response, "body") else None,
        )
        return response


async def healthz(request: Request) -> Response:
    response = PlainTextResponse("ok\n")
    response.headers["x-request-id"] = request_id_from(request.scope["headers"])
    return response


async def jwks(request: Request) -> Response:
    """The public key of the identity assertions, for upstreams to verify them (an empty
    set when none is configured). Unauthenticated and unrecorded: it is public."""
    signer = _gateway(request).assertions
    response = json_response(
        signer.jwks() if signer is not None else {"keys": []},
        request_id_from(request.scope["headers"]),
    )
    response.headers["cache-control"] = "public, max-age=300"
    return response


async def readyz(request: Request) -> Response:
    gateway = _gateway(request)
    audit_problem = gateway.audit.unavailable_reason
    upstreams = gateway.probe.report()
    # Checkpoints carry the wall-clock time they were signed at: compare with the same.
    lag = audit_lag(
        gateway.audit.statistics(), time.time(), gateway.probe.settings.max_checkpoint_age_seconds
    )
    if audit_problem is None and lag["lagging"]:
        audit_problem = "audit checkpoints are lagging"
    ready = audit_problem is None and upstreams["ready"]
    body = {
        "ready": ready,
        # /readyz needs no credentials: say that a reload failed, not what the policy
        # says (the error names models and grants); the details are in the log.
        "policy": {
            "version": gateway.policies.current.version,
            "last_reload_failed": gateway.policies.last_error is not None,
        },
        "audit": {
            "available": gateway.audit.unavailable_reason is None,
            "reason": audit_problem,
            **lag,
        },
        "worker": worker_identity(),
        # The last background probe of each upstream; asking /readyz never probes.
        "upstreams": upstreams,
        # How far each witness is behind; a witness that is down never makes us unready.
        "witnesses": [lag.to_json() for lag in gateway.witnesses.lag().values()]
        if gateway.witnesses is not None
        else [],
    }
    return json_response(
        body, request_id_from(request.scope["headers"]), status=200 if ready else 503
    )


def _model_entry(gateway: Gateway, model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "model-gateway"}


async def list_models(request: Request) -> Response:
    call = Call(request, "request")
    refused = await call.authenticate()
    if refused is not None:
        return refused
    assert call.principal is not None
    ids = [
        m
        for m in visible_models(call.policy, call.principal, call.instant)
        if m in call.gateway.routes
    ]
    roles = decide(call.policy, call.principal, "model.list", None, call.instant).roles
    data = [_model_entry(call.gateway, m, _created(call, m)) for m in ids]
    return await call.finish(
        None,
        "allow",
        "models.list",
        200,
        roles=roles,
        response=json_response({"object": "list", "data": data}, call.request_id),
    )


async def read_model(request: Request) -> Response:
    call = Call(request, "request")
    refused = await call.authenticate()
    if refused is not None:
        return refused
    assert call.principal is not None
    model = request.path_params["model"]
    decision = decide(call.policy, call.principal, "model.list", model, call.instant)
    if not decision.allowed or model not in call.gateway.routes:
        reason = decision.reason if not decision.allowed else "model.unrouted"
        return await call.finish(
            model,
            "deny",
            reason,
            404,
            roles=decision.roles,
            rules=decision.rules,
            response=error_response(
                404, "model_not_found", model_not_found_message(model), call.request_id
            ),
        )
    entry = _model_entry(call.gateway, model, _created(call, model))
    return await call.finish(
        model,
        "allow",
        decision.reason,
        200,
        roles=decision.roles,
        rules=decision.rules,
        response=json_response(entry, call.request_id),
    )


def _created(call: Call, model: str) -> int:
    info = call.policy.models.get(model)
    release = getattr(info, "release_at", None) if info is not None else None
    return int(release.timestamp()) if release is not None else 0


async def whoami(request: Request) -> Response:
    call = Call(request, "request")
    refused = await call.authenticate()
    if refused is not None:
        return refused
    assert call.principal is not None
    roles = decide(call.policy, call.principal, "model.list", None, call.instant).roles
    view = call.principal.to_json()
    for attribute, entry in zip(sorted(call.principal.attributes), view["attributes"], strict=True):
        entry["trusted"] = call.policy.is_trusted(attribute)
    # `issuer` is the source name, as attribute sources and the policy's trust say it;
    # a token caller's `iss` value as sent is `token_issuer`.
    token = "oidc" in call.principal.auth_methods
    view["issuer"] = (
        call.gateway.issuer_sources.get(call.principal.issuer, call.principal.issuer)
        if token
        else call.principal.issuer
    )
    view["token_issuer"] = call.principal.issuer if token else None
    view["roles"] = sorted(roles)
    windows = [
        window
        for window in model_windows(call.policy, call.principal, call.instant)
        if window.model in call.gateway.routes
    ]
    view["models"] = [window.model for window in windows]
    view["model_access"] = [
        {
            "id": window.model,
            "release_at": _instant(window.release_at),
            "grant": None
            if window.grant is None
            else {
                "id": window.grant.id,
                "not_before": _instant(window.grant.not_before),
                "not_after": _instant(window.grant.not_after),
                # What is left of the grant's quota (null when it has none).
                "quota": await call.gateway.quotas.budget(window.grant, call.instant),
            },
        }
        for window in windows
    ]
    limits = call.policy.settings.rate_limits
    organisation = call.gateway.principals.get(call.principal, call.policy, roles)["organisation"]
    view["rate_limits"] = {
        "principal_per_minute": limits.principal_per_minute,
        "organisation_per_minute": limits.for_organisation(organisation)
        if organisation is not None
        else None,
    }
    view["policy_version"] = call.policy.version
    return await call.finish(
        None, "allow", "whoami", 200, roles=roles, response=json_response(view, call.request_id)
    )


def _instant(moment: datetime | None) -> str | None:
    return format_instant(moment) if moment is not None else None


async def unknown_route(request: Request) -> Response:
    """Any other path: authenticated and recorded like everything else, then 404."""
    call = Call(request, "request")
    refused = await call.authenticate(request.method)
    if refused is not None:
        return refused
    return await call.finish(
        None,
        "deny",
        "route.unknown",
        404,
        response=error_response(404, "not_found", "No such route.", call.request_id),
    )


class AnyMethod:
    """A request/response endpoint that Starlette routes whatever the method, so that
    the handler authenticates, records and answers a wrong method itself (405)."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


def routes() -> list[BaseRoute]:
    from gateway.admin.api import admin_routes
    from gateway.auditor_api import auditor_routes
    from gateway.console import console_routes

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/.well-known/jwks.json", jwks),
        Route("/v1/models", AnyMethod(list_models)),
        Route("/v1/models/{model:path}", AnyMethod(read_model)),
        Route("/v1/whoami", AnyMethod(whoami)),
        *auditor_routes(),
        *console_routes(),
        *admin_routes(),
        Route("/{path:path}", AnyMethod(unknown_route)),
    ]
