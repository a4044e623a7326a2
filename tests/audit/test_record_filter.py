"""`RecordFilter`: a value no record can hold is refused, and times may be relative."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.audit import KINDS, RecordError, RecordFilter


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "requests"}, "kind 'requests' is not a record kind: one of request,"),
        ({"decision": "Allow"}, "decision 'Allow' is not one of allow or deny"),
        ({"since": "yesterday"}, "since: time is not an ISO 8601 date-time"),
    ],
)
def test_a_value_no_record_can_hold_is_refused_by_name(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(RecordError, match=message):
        RecordFilter.from_mapping(values)


def test_every_kind_and_decision_is_accepted() -> None:
    for kind in KINDS:
        for decision in ("allow", "deny"):
            assert RecordFilter(kind=kind, decision=decision).equalities() == {
                "kind": kind,
                "decision": decision,
            }


def test_relative_times_resolve_against_the_given_now() -> None:
    now = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    resolved = RecordFilter.from_mapping({"since": "yesterday", "until": "-30m"}, now=now)
    assert (resolved.since, resolved.until) == (
        "2026-11-30T00:00:00.000000Z",
        "2026-12-01T12:00:00.000000Z",
    )
