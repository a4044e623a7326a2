"""The auditor API: read-only access to the audit log for callers with the auditor role.

    GET /v1/audit/checkpoint                      the latest signed checkpoint (text), with
                                                  the witnesses' cosignatures stored for it
    GET /v1/audit/records?kind=&decision=&...     records by filter, paged (`after`, `limit`)
    GET /v1/audit/records/{index}                 one record with its inclusion proof
    GET /v1/audit/consistency?first=&second=      a consistency proof between two tree sizes

Every call, allowed or refused, is itself recorded (kind `auditor`).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.audit import AuditError, AuditUnavailable, IntegrityError, RecordFilter
from gateway.control import AnyMethod, Call, error_response, json_response
from gateway.policy import decide

_MAX_PAGE = 1000
_MAX_INDEX = 1 << 62  # SQLite integers are 64-bit


async def _authorise(request: Request) -> tuple[Call, Response | None]:
    call = Call(request, "auditor")
    refused = await call.authenticate()
    if refused is not None:
        return call, refused
    assert call.principal is not None
    decision = decide(call.policy, call.principal, "audit.read", None, call.instant)
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
                "The auditor role is required for the audit API.",
                call.request_id,
            ),
        )
    return call, None


async def checkpoint(request: Request) -> Response:
    call, refused = await _authorise(request)
    if refused is not None:
        return refused
    try:
        note = await call.gateway.audit.latest_checkpoint()
    except AuditError as exc:
        return await _store_failure(call, exc)
    if note is None:
        return await call.finish(
            None,
            "allow",
            "audit.checkpoint",
            404,
            roles=call.roles,
            response=error_response(
                404, "no_checkpoint", "No checkpoint has been signed yet.", call.request_id
            ),
        )
    response = PlainTextResponse(note)
    response.headers["x-request-id"] = call.request_id
    return await call.finish(
        None, "allow", "audit.checkpoint", 200, roles=call.roles, response=response
    )


async def records(request: Request) -> Response:
    call, refused = await _authorise(request)
    if refused is not None:
        return refused
    params = dict(request.query_params)
    try:
        after = _integer(params.pop("after", "-1"), "after", -1)
        limit = min(_integer(params.pop("limit", "100"), "limit", 1), _MAX_PAGE)
        filters = RecordFilter.from_mapping(params, now=call.instant)
        found = await call.gateway.audit.query(filters, after, limit)
    except (ValueError, AuditError) as exc:
        if isinstance(exc, IntegrityError | AuditUnavailable):
            return await _store_failure(call, exc)
        return await call.finish(
            None,
            "deny",
            "audit.bad_query",
            400,
            roles=call.roles,
            detail={"query": dict(request.query_params)},
            response=error_response(400, "invalid_query", _message(exc), call.request_id),
        )
    body = {
        "records": [{"index": index, "record": json.loads(data)} for index, data in found],
        "next_after": found[-1][0] if len(found) == limit else None,
    }
    return await call.finish(
        None,
        "allow",
        "audit.records",
        200,
        roles=call.roles,
        detail={"query": dict(request.query_params)},
        response=json_response(body, call.request_id),
    )


async def record(request: Request) -> Response:
    call, refused = await _authorise(request)
    if refused is not None:
        return refused
    try:
        index = _integer(request.path_params["index"], "index", 0)
        bundle = await call.gateway.audit.record_with_proof(index)
    except (ValueError, AuditError) as exc:
        if isinstance(exc, IntegrityError | AuditUnavailable):
            return await _store_failure(call, exc)
        return await call.finish(
            None,
            "deny",
            "audit.bad_index",
            404,
            roles=call.roles,
            detail={"index": request.path_params["index"]},
            response=error_response(404, "record_not_found", _message(exc), call.request_id),
        )
    return await call.finish(
        None,
        "allow",
        "audit.record",
        200,
        roles=call.roles,
        detail={"index": index},
        response=json_response(bundle, call.request_id),
    )


async def consistency(request: Request) -> Response:
    call, refused = await _authorise(request)
    if refused is not None:
        return refused
    try:
        first = _integer(request.query_params["first"], "first", 1)
        second = _integer(request.query_params["second"], "second", 1)
        proof = await call.gateway.audit.consistency_proof(first, second)
    except (KeyError, ValueError, AuditError) as exc:
        if isinstance(exc, IntegrityError | AuditUnavailable):
            return await _store_failure(call, exc)
        return await call.finish(
            None,
            "deny",
            "audit.bad_sizes",
            400,
            roles=call.roles,
            response=error_response(400, "invalid_query", _message(exc), call.request_id),
        )
    body: dict[str, Any] = {
        "first": first,
        "second": second,
        "proof": [base64.b64encode(h).decode() for h in proof],
    }
    return await call.finish(
        None,
        "allow",
        "audit.consistency",
        200,
        roles=call.roles,
        detail={"first": first, "second": second},
        response=json_response(body, call.request_id),
    )


async def _store_failure(call: Call, exc: AuditError) -> Response:
    """A store that cannot be read (503), or whose rows disagree with their records (500,
    naming the record: an auditor must see damage, not a quietly shorter answer)."""
    if isinstance(exc, IntegrityError):
        status, code, reason = 500, "audit_integrity_error", "audit.integrity"
        message = f"The audit store is damaged: {exc}."
    else:
        status, code, reason = 503, "audit_unavailable", "audit.unavailable"
        message = "The audit store cannot be read right now."
    return await call.finish(
        None,
        "deny",
        reason,
        status,
        roles=call.roles,
        response=error_response(status, code, message, call.request_id),
    )


class _BadNumber(ValueError):
    """A number in the path or query is malformed or out of range; the message says which."""


def _integer(text: str, name: str, minimum: int) -> int:
    """`text` as a whole number from `minimum` up; _BadNumber names `name` otherwise."""
    try:
        value = int(text, 10) if text.isascii() else None
    except ValueError:
        value = None
    if value is None or not minimum <= value < _MAX_INDEX:
        raise _BadNumber(f"{name}: expected a whole number from {minimum} up.")
    return value


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"Missing query parameter {exc.args[0]!r}."
    if isinstance(exc, AuditError | _BadNumber):
        return str(exc)
    return "Malformed number in the query."


def auditor_routes() -> list[Route]:
    return [
        Route("/v1/audit/checkpoint", AnyMethod(checkpoint)),
        Route("/v1/audit/records", AnyMethod(records)),
        Route("/v1/audit/records/{index}", AnyMethod(record)),
        Route("/v1/audit/consistency", AnyMethod(consistency)),
    ]
