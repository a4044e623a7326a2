"""Counting the log for the pictures: bounded scans folded into tallies.

Every count goes through the log's checked read (`AuditLog.query`: each row's query
columns are re-derived from its bytes, and a damaged row raises IntegrityError), so a
picture never counts a column that disagrees with its record. Each scan covers one time
window and reads at most `MAX_SCAN` records, oldest first; a picture whose window holds
more says it was cut short.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import AuditLog, RecordFilter
from gateway.audit.records import parse_time

__all__ = [
    "MAX_SCAN",
    "GrantUse",
    "RefusalsOverTime",
    "RequestsByOrganisationModel",
    "Scan",
    "bucket_width",
    "scan",
]

MAX_SCAN = 20_000
_PAGE = 1000
_SECOND = 1_000_000
# Bucket widths a reader can name, from a minute to a week (microseconds).
_WIDTHS = tuple(
    seconds * _SECOND
    for seconds in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)
)


@dataclass
class Scan:
    """How much a scan read, and whether its window held more than it may read."""

    counted: int = 0
    truncated: bool = False


async def scan(
    audit: AuditLog,
    record_filter: RecordFilter,
    fold: Callable[[dict[str, Any]], None],
    max_records: int = MAX_SCAN,
) -> Scan:
    """Feed every record matching `record_filter` (at most `max_records`) to `fold`."""
    result = Scan()
    after = -1
    while True:
        asked = min(_PAGE, max_records - result.counted + 1)  # one more: is there more?
        page = await audit.query(record_filter, after, asked)
        for _, data in page:
            if result.counted == max_records:
                result.truncated = True
                return result
            fold(json.loads(data))
            result.counted += 1
        if len(page) < asked:
            return result
        after = page[-1][0]


def bucket_width(start_us: int, end_us: int, most: int) -> int:
    """The narrowest named width that cuts [start, end] into at most `most` buckets."""
    for width in _WIDTHS:
        if (end_us - start_us) // width < most:
            return width
    return -(-(end_us - start_us) // most)


@dataclass
class _Buckets:
    """Fixed-width time buckets from `start_us` (aligned to the width) to `end_us`."""

    start_us: int
    end_us: int
    width_us: int
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.start_us -= self.start_us % self.width_us
        self.count = (self.end_us - self.start_us) // self.width_us + 1

    def position(self, time_us: int) -> int | None:
        if not self.start_us <= time_us <= self.end_us:
            return None
        return (time_us - self.start_us) // self.width_us


class RefusalsOverTime:
    """Refused records per reason code per time bucket."""

    def __init__(self, start_us: int, end_us: int, most_buckets: int = 48) -> None:
        self.buckets = _Buckets(start_us, end_us, bucket_width(start_us, end_us, most_buckets))
        self.by_reason: dict[str, list[int]] = {}

    def add(self, record: dict[str, Any]) -> None:
        if record.get("decision") != "deny":
            return
        position = self.buckets.position(parse_time(record["time"]))
        if position is None:
            return
        reason = str(record.get("reason"))
        counts = self.by_reason.setdefault(reason, [0] * self.buckets.count)
        counts[position] += 1


class RequestsByOrganisationModel:
    """Allowed and refused requests per (organisation, model)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}

    def add(self, record: dict[str, Any]) -> None:
        principal = record.get("principal")
        organisation = principal.get("organisation") if isinstance(principal, dict) else None
        key = (str(organisation or "(no organisation)"), str(record.get("model") or "(no model)"))
        counts = self.counts.setdefault(key, [0, 0])
        counts[0 if record.get("decision") == "allow" else 1] += 1


class GrantUse:
    """Requests decided under one grant (served, or refused at its edges) per time bucket."""

    def __init__(self, grant_id: str, start_us: int, end_us: int, most_buckets: int = 60):
        self.grant_id = grant_id
        self.buckets = _Buckets(start_us, end_us, bucket_width(start_us, end_us, most_buckets))
        self.served = [0] * self.buckets.count
        self.refused = [0] * self.buckets.count
        self.refusal_reasons: dict[str, int] = {}

    def add(self, record: dict[str, Any]) -> None:
        if record.get("grant_id") != self.grant_id:
            return
        position = self.buckets.position(parse_time(record["time"]))
        if position is None:
            return
        if record.get("decision") == "allow":
            self.served[position] += 1
        else:
            self.refused[position] += 1
            reason = str(record.get("reason"))
            self.refusal_reasons[reason] = self.refusal_reasons.get(reason, 0) + 1
