"""Audit records: preparation for the log, body digests, and query filters.

A record is a dict of JSON values built by the request path. The log adds `index`
(its leaf index) and stores the RFC 8785 canonical bytes verbatim. Because the index
is only known when the writer commits, a record is canonicalised once, up front, as
the two halves around where `"index":N` sorts; the writer joins them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from gateway.audit.errors import RecordError
from gateway.audit.jcs import canonicalize_around
from gateway.instants import InstantError, parse_instant

__all__ = [
    "DECISIONS",
    "FIELD_NAMES",
    "KINDS",
    "BodyDigest",
    "Fields",
    "PreparedRecord",
    "RecordFilter",
    "format_time",
    "parse_time",
    "prepare_record",
    "record_fields",
]

KINDS = (
    "request",
    "completion",
    "auth_failure",
    "admin",
    "auditor",
    "policy_reload",
    "tls_failure",
)
DECISIONS = ("allow", "deny")

_DIGEST_PREFIX = "hmac-sha256:"


class BodyDigest:
    """Keyed digests of request and response bodies: ``"hmac-sha256:<hex>"``."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a body digest key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "BodyDigest(key=<hidden>)"

    def digest(self, data: bytes) -> str:
        """The digest of `data` in one call."""
        return _DIGEST_PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def incremental(self) -> IncrementalDigest:
        """A digest fed chunk by chunk, for streamed bodies."""
        return IncrementalDigest(hmac.new(self._key, digestmod=hashlib.sha256))


class IncrementalDigest:
    """An HMAC-SHA-256 fed with `update(chunk)`; `hexdigest()` gives the prefixed form."""

    __slots__ = ("_mac",)

    def __init__(self, mac: hmac.HMAC) -> None:
        self._mac = mac

    def update(self, chunk: bytes) -> None:
        """Add the next chunk of the body."""
        self._mac.update(chunk)

    def hexdigest(self) -> str:
        """``"hmac-sha256:<hex>"`` of everything fed so far."""
        return _DIGEST_PREFIX + self._mac.hexdigest()


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as records carry it: 2026-11-27T06:10:25.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """Microseconds since the Unix epoch of an ISO 8601 / RFC 3339 time.

    A time without a zone is taken as UTC.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise RecordError("time is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


FIELD_NAMES = (
    "time_us",
    "kind",
    "request_id",
    "subject",
    "organisation",
    "model",
    "decision",
    "reason",
)
"""The query columns a store keeps beside each record, in order."""

Fields = tuple[int, str, str | None, str | None, str | None, str | None, str | None, str | None]
"""A record's query columns, in the order of FIELD_NAMES."""


def record_fields(record: Mapping[str, Any]) -> Fields:
    """The query columns of a record, derived from the record itself (built or parsed).

    The one definition that writing and verifying share, so a stored column can always be
    checked against the bytes it was derived from. Raises RecordError naming a field of
    the wrong type.
    """
    principal = record.get("principal")
    if principal is None:
        principal = {}
    elif type(principal) is not dict:
        raise RecordError("record principal must be an object or null")
    kind = record.get("kind")
    if type(kind) is not str:
        raise RecordError("record kind is missing")
    time_text = record.get("time")
    if type(time_text) is not str:
        raise RecordError("record time is missing")
    return (
        parse_time(time_text),
        kind,
        _optional_string(record, "request_id"),
        _optional_string(principal, "subject"),
        _optional_string(principal, "organisation"),
        _optional_string(record, "model"),
        _optional_string(record, "decision"),
        _optional_string(record, "reason"),
    )


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A record canonicalised around its future index, plus its query columns."""

    head: bytes
    tail: bytes
    fields: Fields

    @property
    def kind(self) -> str:
        return self.fields[1]

    @property
    def request_id(self) -> str | None:
        return self.fields[2]

    @property
    def model(self) -> str | None:
        return self.fields[5]

    def with_index(self, index: int) -> bytes:
        """The canonical record bytes with `"index": index` in its sorted place."""
        return b"".join((self.head, b'"index":', str(index).encode(), self.tail))


def _optional_string(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or type(value) is str:
        return value
    raise RecordError(f"record field {name} must be a string or null")


def prepare_record(record: Mapping[str, Any]) -> PreparedRecord:
    """Validate and canonicalise `record` (without its index); raises RecordError."""
    if type(record) is not dict:
        raise RecordError("a record is a dict")
    if "index" in record:
        raise RecordError("the log assigns the index; a record must not carry one")
    if record.get("kind") not in KINDS:
        raise RecordError("record kind is missing or unknown")
    fields = record_fields(record)
    head, tail = canonicalize_around(record, "index")
    return PreparedRecord(head=head, tail=tail, fields=fields)


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records a query returns; every set field must match (times are inclusive)."""

    since: str | None = None
    until: str | None = None
    kind: str | None = None
    request_id: str | None = None
    subject: str | None = None
    organisation: str | None = None
    model: str | None = None
    decision: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        # A value no record can have is a mistake, not a question with an empty answer.
        if self.kind is not None and self.kind not in KINDS:
            raise RecordError(f"kind {self.kind!r} is not a record kind: one of {_or(KINDS)}")
        if self.decision is not None and self.decision not in DECISIONS:
            raise RecordError(f"decision {self.decision!r} is not one of {_or(DECISIONS)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], now: datetime | None = None) -> RecordFilter:
        """Build a filter from query parameters; unknown names raise RecordError.

        With `now`, `since` and `until` may also be relative (`-1d`, `yesterday`, ...;
        see `gateway.instants`); they are resolved against it here.
        """
        known = {field.name for field in fields(cls)}
        for name in values:
            if name not in known:
                raise RecordError(f"unknown filter {name!r}: one of {_or(sorted(known))}")
        resolved = dict(values)
        for name in ("since", "until"):
            text = resolved.get(name)
            if text is None:
                continue
            try:
                if now is not None:
                    resolved[name] = format_time(parse_instant(text, now))
                else:
                    parse_time(text)
            except (InstantError, RecordError) as exc:
                raise RecordError(f"{name}: {exc}") from exc
        return cls(**resolved)

    def bounds(self) -> tuple[int | None, int | None]:
        """`since` and `until` as epoch microseconds (RecordError if malformed)."""
        since = parse_time(self.since) if self.since is not None else None
        until = parse_time(self.until) if self.until is not None else None
        return since, until

    def equalities(self) -> dict[str, str]:
        """The column = value conditions of this filter."""
        return {
            name: getattr(self, name) for name in FIELD_NAMES[1:] if getattr(self, name) is not None
        }


def _or(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]
