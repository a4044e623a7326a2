"""The pictures page: refusals over time by reason code, requests per organisation and
model, and a time line per pre-release grant of the live policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditError, AuditLog, RecordFilter, format_time
from gateway.console import charts
from gateway.console.access import Visit, begin
from gateway.console.activity import (
    MAX_SCAN,
    GrantUse,
    RefusalsOverTime,
    RequestsByOrganisationModel,
    scan,
)
from gateway.console.records import BadQuery
from gateway.console.templates import Renderer
from gateway.instants import InstantError, format_instant, parse_instant
from gateway.policy import Grant, Policy

__all__ = ["pictures_page"]

DEFAULT_SINCE = "-7d"
MAX_PAIRS = 20
MAX_TIMELINES = 12
_PADDING = timedelta(days=7)  # refusals just before a window opens or after it ends


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _window(request: Request, now: datetime) -> tuple[datetime, datetime]:
    params = request.query_params
    for name in params:
        if name not in ("since", "until"):
            raise BadQuery(f"Unknown query field {name!r}.")
        if len(params.getlist(name)) > 1:
            raise BadQuery(f"{name} is given more than once.")
    try:
        since = parse_instant(params.get("since") or DEFAULT_SINCE, now)
        until = parse_instant(params.get("until") or "now", now)
    except InstantError as exc:
        raise BadQuery(str(exc)) from exc
    if until <= since:
        raise BadQuery("until must be later than since.")
    return since, until


async def _timeline(
    audit: AuditLog, policy: Policy, grant: Grant, model: str, now: datetime
) -> dict[str, Any]:
    info = policy.models.get(model)
    release = info.release_at if info is not None else None
    earliest = release - policy.settings.max_prerelease_lead if release is not None else None
    start = min(m for m in (grant.not_before, earliest) if m is not None) - _PADDING
    end = max(m for m in (grant.not_after, release) if m is not None) + _PADDING
    use = GrantUse(grant.id, _micros(start), _micros(end))
    record_filter = RecordFilter(
        since=format_time(start), until=format_time(end), model=model, kind="request"
    )
    counted = await scan(audit, record_filter, use.add)
    marks = [("now", _micros(now), "now")]
    if release is not None:
        marks.insert(0, (f"release {format_instant(release)}", _micros(release), "release"))
    if earliest is not None:
        marks.append(("earliest opening", _micros(earliest), "earliest"))
    chart = charts.grant_timeline(
        f"Grant {grant.id}: {model}",
        use.buckets.start_us,
        use.buckets.width_us,
        use.served,
        use.refused,
        marks,
        (_micros(grant.not_before), _micros(grant.not_after)),
    )
    return {
        "grant": grant,
        "model": model,
        "release": format_instant(release) if release is not None else None,
        "not_before": format_instant(grant.not_before),
        "not_after": format_instant(grant.not_after),
        "served": sum(use.served),
        "refused": use.refusal_reasons,
        "chart": chart,
        "scan": counted,
    }


async def pictures_page(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    call = visit.call
    audit = call.gateway.audit
    detail = {"query": dict(request.query_params)}
    try:
        since, until = _window(request, call.instant)
    except BadQuery as exc:
        return await visit.refuse("console.bad_query", 400, str(exc), detail)
    bounds = {"since": format_time(since), "until": format_time(until)}
    refusals = RefusalsOverTime(_micros(since), _micros(until))
    requests = RequestsByOrganisationModel()
    try:
        refusal_scan = await scan(audit, RecordFilter(**bounds, decision="deny"), refusals.add)
        request_scan = await scan(audit, RecordFilter(**bounds, kind="request"), requests.add)
        granted = [(grant, model) for grant in call.policy.grants for model in grant.models]
        timelines = [
            await _timeline(audit, call.policy, grant, model, call.instant)
            for grant, model in granted[:MAX_TIMELINES]
        ]
    except AuditError as exc:
        return await visit.store_failure(exc)
    pairs = sorted(requests.counts.items(), key=lambda item: (-sum(item[1]), item[0]))
    rows = [(f"{org} · {model}", allowed, refused) for (org, model), (allowed, refused) in pairs]
    buckets = refusals.buckets
    return await visit.answer(
        "console.pictures",
        "pictures.html",
        section="pictures",
        detail=detail,
        since=format_instant(since),
        until=format_instant(until),
        since_text=request.query_params.get("since") or DEFAULT_SINCE,
        until_text=request.query_params.get("until") or "now",
        refusals=charts.stacked_columns(
            "Refusals over time by reason code",
            buckets.start_us,
            buckets.width_us,
            buckets.count,
            refusals.by_reason,
        ),
        refusal_totals=sorted(
            ((reason, sum(counts)) for reason, counts in refusals.by_reason.items()),
            key=lambda item: (-item[1], item[0]),
        ),
        refusal_scan=refusal_scan,
        requests=charts.horizontal_bars("Requests per organisation and model", rows[:MAX_PAIRS]),
        request_rows=rows,
        request_scan=request_scan,
        timelines=timelines,
        max_scan=MAX_SCAN,
        bucket_width=_width_words(buckets.width_us),
    )


def _width_words(width_us: int) -> str:
    seconds = width_us // 1_000_000
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"
    return f"{seconds} s"
