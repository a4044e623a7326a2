"""The admin API, for callers holding the `operator` role (docs/admin.md).

    GET    /v1/admin/policy                 the effective policy version and its parts
    GET    /v1/admin/suspensions            every suspension, file and run-time, with origin
    POST   /v1/admin/suspensions            add a suspension (a policy-file item, as JSON)
    DELETE /v1/admin/suspensions/{id}       lift a run-time suspension
    GET    /v1/admin/grants                 every grant, with origin and revocation
    POST   /v1/admin/grants                 add a grant (signed, as in grants.yaml)
    DELETE /v1/admin/grants/{id}            revoke a grant now (file or run-time)

Every call is recorded (kind `admin`). A change is recorded before it is made — the
object, the caller, the policy version in force — and its outcome after, with the new
version; if the first record cannot be written nothing changes (503). A change takes
effect at once in this process and, through the change channel, in every other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.control import AnyMethod, Call, error_response, json_response
from gateway.dynamic import ControlStoreError, LiveControl, ObjectRefused, StoredObject
from gateway.dynamic.live import Applied
from gateway.policy import Grant, Suspension, decide
from gateway.records import event_record

__all__ = ["admin_routes"]

MAX_BODY_BYTES = 64 << 10


async def _authorise(request: Request, methods: tuple[str, ...]) -> tuple[Call, Response | None]:
    call = Call(request, "admin")
    refused = await call.authenticate(methods)
    if refused is not None:
        return call, refused
    assert call.principal is not None
    decision = decide(call.policy, call.principal, "admin", None, call.instant)
    call.roles = decision.roles
    if not decision.allowed:
        return call, await call.finish(
            None,
            "deny",
            decision.reason,
            403,
            roles=decision.roles,
            rules=decision.rules,
            response=error_response(
                403,
                "permission_denied",
                "The operator role is required for the admin API.",
                call.request_id,
            ),
        )
    return call, None


def _control(call: Call) -> LiveControl:
    control = call.gateway.control
    if control is None:
        raise RuntimeError("the admin API needs the gateway's lifespan to have started")
    return control


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _suspension_view(item: Suspension, stored: StoredObject | None) -> dict[str, Any]:
    return {
        "id": item.id,
        "origin": item.origin,
        "dimension": item.dimension,
        "value": item.value,
        "reason": item.reason,
        "since": _instant(item.since),
        "until": _instant(item.until),
        "created_by": stored.created_by if stored is not None else None,
    }


def _grant_view(item: Grant, revoked: bool, stored: StoredObject | None) -> dict[str, Any]:
    return {
        "id": item.id,
        "origin": item.origin,
        "organisation": item.organisation,
        "subjects": sorted(item.subjects),
        "models": list(item.models),
        "not_before": _instant(item.not_before),
        "not_after": _instant(item.not_after),
        "purpose": item.purpose,
        "quota": (
            {"requests": item.quota.requests, "tokens": item.quota.tokens}
            if item.quota is not None
            else None
        ),
        "digest": item.digest,
        "approvers": list(item.approvals),
        "revoked": revoked,
        "created_by": stored.created_by if stored is not None else None,
    }


async def policy(request: Request) -> Response:
    call, refused = await _authorise(request, ("GET",))
    if refused is not None:
        return refused
    control = _control(call)
    current = call.gateway.policies.current
    body = {
        "version": current.version,
        "file_version": call.gateway.policies.static.version,
        "files": [
            {"path": path, "sha256": digest}
            for path, digest in sorted(control.file_hashes().items())
        ],
        "objects": [
            {
                "id": stored.id,
                "kind": stored.kind,
                "sha256": stored.digest,
                "created_by": stored.created_by,
                "created_at": _instant(datetime.fromtimestamp(stored.created_us / 1e6, UTC)),
                "in_force": parsed is not None,
            }
            for stored, parsed in control.objects()
        ],
    }
    return await call.finish(
        None,
        "allow",
        "admin.policy",
        200,
        roles=call.roles,
        response=json_response(body, call.request_id),
    )


async def suspensions(request: Request) -> Response:
    call, refused = await _authorise(request, ("GET", "POST"))
    if refused is not None:
        return refused
    if request.method == "POST":
        return await _change(
            call,
            "admin.suspension.add",
            lambda body, actor: _control(call).add_suspension(body, actor),
        )
    stored = {item.id: item for item, _ in _control(call).objects()}
    body = {
        "suspensions": [
            _suspension_view(item, stored.get(item.id or ""))
            for item in call.gateway.policies.current.suspensions
        ]
    }
    return await call.finish(
        None,
        "allow",
        "admin.suspensions",
        200,
        roles=call.roles,
        response=json_response(body, call.request_id),
    )


async def suspension(request: Request) -> Response:
    call, refused = await _authorise(request, ("DELETE",))
    if refused is not None:
        return refused
    object_id = request.path_params["id"]
    return await _removal(
        call,
        "admin.suspension.remove",
        object_id,
        lambda actor: _control(call).lift_suspension(object_id, actor),
    )


async def grants(request: Request) -> Response:
    call, refused = await _authorise(request, ("GET", "POST"))
    if refused is not None:
        return refused
    if request.method == "POST":
        return await _change(
            call, "admin.grant.add", lambda body, actor: _control(call).add_grant(body, actor)
        )
    control = _control(call)
    stored = {item.id: item for item, _ in control.objects()}
    current = call.gateway.policies.current
    in_force = {grant.id for grant in current.grants}
    every = {grant.id: grant for grant in (*call.gateway.policies.static.grants, *current.grants)}
    body = {
        "grants": [
            _grant_view(grant, grant.id not in in_force, stored.get(f"grant:{grant.id}"))
            for grant in every.values()
        ]
    }
    return await call.finish(
        None,
        "allow",
        "admin.grants",
        200,
        roles=call.roles,
        response=json_response(body, call.request_id),
    )


async def grant(request: Request) -> Response:
    call, refused = await _authorise(request, ("DELETE",))
    if refused is not None:
        return refused
    grant_id = request.path_params["id"]
    return await _removal(
        call,
        "admin.grant.revoke",
        grant_id,
        lambda actor: _control(call).revoke_grant(grant_id, actor),
    )


def _actor(call: Call) -> str:
    assert call.principal is not None
    return f"{call.principal.issuer} {call.principal.subject}"


async def _read_object(call: Call) -> dict[str, Any] | Response:
    chunks: list[bytes] = []
    size = 0
    async for chunk in call.request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return await call.finish(
                None,
                "deny",
                "request.too_large",
                413,
                roles=call.roles,
                response=error_response(
                    413,
                    "request_too_large",
                    f"The body exceeds {MAX_BODY_BYTES} bytes.",
                    call.request_id,
                ),
            )
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return await call.finish(
            None,
            "deny",
            "request.invalid_json",
            400,
            roles=call.roles,
            response=error_response(
                400, "invalid_json", "The body must be one JSON object.", call.request_id
            ),
        )
    return value


async def _change(call: Call, reason: str, make: Any) -> Response:
    body = await _read_object(call)
    if isinstance(body, Response):
        return body
    intent = await _record_intent(call, reason, {"object": body})
    if intent is None:
        return _unavailable(call)
    try:
        applied: Applied = await make(body, _actor(call))
    except ObjectRefused as refusal:
        return await _outcome(call, reason, intent, refusal.status, None, refusal)
    except ControlStoreError as exc:
        return await _outcome(call, reason, intent, 503, None, _store_failed(exc))
    return await _outcome(call, reason, intent, 201, applied, None)


async def _removal(call: Call, reason: str, object_id: str, make: Any) -> Response:
    intent = await _record_intent(call, reason, {"object_id": object_id})
    if intent is None:
        return _unavailable(call)
    try:
        applied: Applied | None = await make(_actor(call))
    except ObjectRefused as refused:
        return await _outcome(call, reason, intent, refused.status, None, refused)
    except ControlStoreError as exc:
        return await _outcome(call, reason, intent, 503, None, _store_failed(exc))
    if applied is None:
        refusal = ObjectRefused(
            f"{object_id} is not a run-time object or grant in force", status=404
        )
        return await _outcome(call, reason, intent, 404, None, refusal)
    return await _outcome(call, reason, intent, 200, applied, None)


def _store_failed(exc: ControlStoreError) -> ObjectRefused:
    """The shared store failed mid-change: nothing was changed (its transaction rolled
    back), and the outcome record says so."""
    return ObjectRefused(f"The change was not made: {exc.reason}.", status=503)


async def _record_intent(call: Call, reason: str, detail: dict[str, Any]) -> int | None:
    """The write-ahead record of a change: who asks for what, under which version."""
    client = call.request.scope.get("client")
    assert call.principal is not None
    record = event_record(
        call.now,
        "admin",
        request_id=call.request_id,
        route=call.request.url.path,
        method=call.request.method,
        client_address=str(client[0]) if client else None,
        principal=call.gateway.principals.get(call.principal, call.policy, call.roles),
        decision="allow",
        reason=reason,
        status=None,
        old_version=call.policy.version,
        detail=detail,
    )
    return await call.gateway.record(record)


async def _outcome(
    call: Call,
    reason: str,
    intent: int,
    status: int,
    applied: Applied | None,
    refusal: ObjectRefused | None,
) -> Response:
    if refusal is not None:
        response = error_response(
            status,
            {400: "invalid_object", 409: "conflict", 503: "control_store_unavailable"}.get(
                status, "not_found"
            ),
            refusal.message,
            call.request_id,
        )
        if refusal.field is not None:
            body = json.loads(bytes(response.body))
            body["error"]["param"] = refusal.field
            response = json_response(body, call.request_id, status)
        detail: dict[str, Any] = {
            "request_index": intent,
            "error": refusal.message,
            "field": refusal.field,
        }
        decision = "deny"
    else:
        assert applied is not None
        response = json_response(
            {
                "id": applied.stored.id,
                "kind": applied.stored.kind,
                "policy_version": applied.new_version,
            },
            call.request_id,
            status,
        )
        detail = {
            "request_index": intent,
            "object_id": applied.stored.id,
            "object": json.loads(applied.stored.body),
            "old_version": applied.old_version,
            "new_version": applied.new_version,
        }
        decision = "allow"
    return await call.finish(
        None, decision, reason, status, roles=call.roles, detail=detail, response=response
    )


def _unavailable(call: Call) -> Response:
    return error_response(
        503,
        "audit_unavailable",
        "The gateway cannot record the change, so it made none.",
        call.request_id,
    )


def admin_routes() -> list[Route]:
    return [
        Route("/v1/admin/policy", AnyMethod(policy)),
        Route("/v1/admin/suspensions", AnyMethod(suspensions)),
        Route("/v1/admin/suspensions/{id}", AnyMethod(suspension)),
        Route("/v1/admin/grants", AnyMethod(grants)),
        Route("/v1/admin/grants/{id}", AnyMethod(grant)),
    ]
