"""The records pages: search and filter the log (paged by index), and one record with
its inclusion proof and checkpoint, for the browser to verify."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import KINDS, AuditError, RecordError, RecordFilter
from gateway.audit.records import DECISIONS
from gateway.console.access import Visit, begin
from gateway.console.templates import Renderer

__all__ = ["record_page", "records_page"]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_MAX_INDEX = 1 << 62  # SQLite integers are 64-bit
FILTER_NAMES = (
    "since",
    "until",
    "organisation",
    "subject",
    "model",
    "decision",
    "reason",
    "request_id",
    "kind",
)
_PAGING_NAMES = ("after", "limit")


class BadQuery(ValueError):
    """A search the console cannot run; the message says what to change."""


def whole_number(text: str, name: str, minimum: int) -> int:
    """`text` as a whole number from `minimum` up; BadQuery names `name` otherwise."""
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) < _MAX_INDEX:
        value = int(text)
        if value >= minimum:
            return value
    if minimum < 0 and text == "-1":
        return -1
    raise BadQuery(f"{name}: expected a whole number from {minimum} up.")


def _search(request: Request, now: Any) -> tuple[dict[str, str], RecordFilter, int, int]:
    """The search in the query string: its non-empty filters, the filter, `after`, `limit`."""
    params = request.query_params
    for name in params:
        if name not in FILTER_NAMES and name not in _PAGING_NAMES:
            raise BadQuery(f"Unknown search field {name!r}.")
        if len(params.getlist(name)) > 1:
            raise BadQuery(f"{name} is given more than once.")
    # An empty form field means "any": browsers send every field of the form.
    filters = {name: params[name] for name in FILTER_NAMES if params.get(name, "").strip()}
    after = whole_number(params.get("after") or "-1", "after", -1)
    limit = min(whole_number(params.get("limit") or str(PAGE_SIZE), "limit", 1), MAX_PAGE_SIZE)
    try:
        record_filter = RecordFilter.from_mapping(
            {name: value.strip() for name, value in filters.items()}, now=now
        )
    except RecordError as exc:
        raise BadQuery(str(exc)) from exc
    return filters, record_filter, after, limit


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _row(index: int, data: bytes) -> dict[str, Any]:
    record = json.loads(data)
    principal = record.get("principal")
    principal = principal if isinstance(principal, dict) else {}
    return {
        "index": index,
        "time": _text(record.get("time")),
        "kind": _text(record.get("kind")),
        "decision": _text(record.get("decision")),
        "reason": _text(record.get("reason")),
        "organisation": _text(principal.get("organisation")),
        "subject": _text(principal.get("subject")),
        "model": _text(record.get("model")),
        "status": _text(record.get("status")),
        "request_id": _text(record.get("request_id")),
    }


async def records_page(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    detail = {"query": dict(request.query_params)}
    try:
        filters, record_filter, after, limit = _search(request, visit.call.instant)
        found = await visit.call.gateway.audit.query(record_filter, after, limit)
    except BadQuery as exc:
        return await visit.refuse("console.bad_query", 400, str(exc), detail)
    except AuditError as exc:
        return await visit.store_failure(exc)
    next_link = None
    if len(found) == limit:
        next_link = "/audit/records?" + urlencode({**filters, "after": found[-1][0]})
    return await visit.answer(
        "console.records",
        "records.html",
        section="records",
        detail=detail,
        filters=filters,
        kinds=KINDS,
        decisions=DECISIONS,
        rows=[_row(index, data) for index, data in found],
        after=after,
        next_link=next_link,
    )


async def record_page(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    text = request.path_params["index"]
    audit = visit.call.gateway.audit
    try:
        index = whole_number(text, "index", 0)
    except BadQuery as exc:
        return await visit.refuse("console.bad_index", 404, str(exc), {"index": text})
    bundle: dict[str, Any] | None = None
    try:
        bundle = await audit.record_with_proof(index)
        data = base64.b64decode(bundle["record"])
    except RecordError:
        # Not covered by a signed checkpoint yet (or not there at all): show it unproved.
        try:
            found = await audit.query(RecordFilter(), index - 1, 1)
        except AuditError as exc:
            return await visit.store_failure(exc)
        if not found or found[0][0] != index:
            return await visit.refuse(
                "console.bad_index", 404, f"The log has no record {index}.", {"index": index}
            )
        data = found[0][1]
    except AuditError as exc:
        return await visit.store_failure(exc)
    record = json.loads(data)
    return await visit.answer(
        "console.record",
        "record.html",
        section="records",
        detail={"index": index},
        index=index,
        canonical=data.decode("utf-8"),
        pretty=json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True),
        record_b64=base64.b64encode(data).decode(),
        proof=bundle["proof"] if bundle is not None else None,
        tree_size=bundle["tree_size"] if bundle is not None else None,
        checkpoint=bundle["checkpoint"] if bundle is not None else None,
        checkpoint_b64=(
            base64.b64encode(bundle["checkpoint"].encode()).decode() if bundle is not None else None
        ),
        every_seconds=audit.settings.checkpoint_every_seconds,
    )
