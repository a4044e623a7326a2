"""The overview and the checkpoint history: the newest checkpoint, whether signing keeps
up, and each older checkpoint with its consistency proof to the newest, for the browser
to verify."""

from __future__ import annotations

import base64
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditError, StoredCheckpoint
from gateway.console.access import Visit, begin
from gateway.console.health import checkpoint_health
from gateway.console.records import BadQuery, whole_number
from gateway.console.templates import Renderer

__all__ = ["checkpoints_page", "overview_page"]

HISTORY_PAGE = 20


def _note(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "created_us": checkpoint.created_us,
        "note": checkpoint.note,
        "note_b64": base64.b64encode(checkpoint.note.encode()).decode(),
    }


async def overview_page(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    audit = visit.call.gateway.audit
    try:
        tree_size, newest = await audit.checkpoint_history(None, 1)
    except AuditError as exc:
        return await visit.store_failure(exc)
    latest = newest[0] if newest else None
    return await visit.answer(
        "console.overview",
        "overview.html",
        section="overview",
        health=checkpoint_health(tree_size, latest, time.time(), audit.settings),
        newest=_note(latest) if latest is not None else None,
        origin=audit.settings.origin,
    )


async def checkpoints_page(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    audit = visit.call.gateway.audit
    before_text = request.query_params.get("before")
    try:
        unknown = [name for name in request.query_params if name != "before"]
        if unknown:
            raise BadQuery(f"Unknown query field {unknown[0]!r}.")
        before = whole_number(before_text, "before", 1) if before_text else None
    except BadQuery as exc:
        return await visit.refuse(
            "console.bad_query", 400, str(exc), {"query": dict(request.query_params)}
        )
    try:
        # The page first, then the newest: a checkpoint signed between the two reads is
        # then newer than every row, never a row without a proof to the newest.
        _, page = await audit.checkpoint_history(before, HISTORY_PAGE)
        tree_size, newest = await audit.checkpoint_history(None, 1)
        latest = newest[0] if newest else None
        rows = []
        for checkpoint in page:
            row = _note(checkpoint)
            if latest is not None and checkpoint.tree_size < latest.tree_size:
                proof = await audit.consistency_proof(checkpoint.tree_size, latest.tree_size)
                row["proof"] = [base64.b64encode(hash_).decode() for hash_ in proof]
            else:
                row["proof"] = None
            rows.append(row)
    except AuditError as exc:
        return await visit.store_failure(exc)
    older = page[-1].tree_size if len(page) == HISTORY_PAGE else None
    return await visit.answer(
        "console.checkpoints",
        "checkpoints.html",
        section="checkpoints",
        detail={"before": before},
        health=checkpoint_health(tree_size, latest, time.time(), audit.settings),
        newest=_note(latest) if latest is not None else None,
        rows=rows,
        older_link=f"/audit/checkpoints?before={older}" if older is not None else None,
    )
