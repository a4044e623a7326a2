"""Instants as users type them: ISO 8601 date-times, dates, and times relative to now.

One grammar for every place a command or a query asks for a time:

    2027-01-05T12:00:00Z, 2027-01-05T12:00:00.5+01:00, 2027-01-05 12:00Z   ISO 8601
    2027-01-05                                          that day, 00:00 UTC
    now, today, yesterday, tomorrow                     today = 00:00 UTC of the current day
    -30m, -2h, -1d, +1w, -1d12h                         an offset from now (w d h m s)

A date-time without a zone is UTC where `zone_required` is false, and refused where it is
true (questions about a policy's windows, where a guessed zone would answer the wrong
question). Relative forms need `now`, which the caller passes: this module reads no clock.

Errors:

    InstantError (ValueError)   the text is not an instant; `text` holds it, the message
                                says which forms are accepted
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["InstantError", "accepted_forms", "format_instant", "parse_instant"]

_OFFSET = re.compile(r"([+-])((?:[0-9]{1,9}[wdhms])+)")
_OFFSET_PART = re.compile(r"([0-9]{1,9})([wdhms])")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DAY_WORDS = {"today": 0, "yesterday": -1, "tomorrow": 1}


class InstantError(ValueError):
    """`text` is not an instant in any accepted form."""

    def __init__(self, text: str, message: str) -> None:
        self.text = text
        super().__init__(message)


def accepted_forms(*, zone_required: bool = False) -> str:
    """The accepted forms, as an error message or a help text lists them."""
    zone = "with a zone" if zone_required else "no zone means UTC"
    return (
        f"an ISO 8601 date-time ({zone}), e.g. 2027-01-05T12:00:00Z; a date, e.g. 2027-01-05; "
        "now, today, yesterday or tomorrow; or an offset from now such as -30m, -2h, -1d, +1w"
    )


def parse_instant(text: str, now: datetime, *, zone_required: bool = False) -> datetime:
    """The aware UTC datetime `text` names; relative forms count from `now` (aware).

    Raises InstantError, whose message names the accepted forms.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    word = text.strip()
    lowered = word.lower()
    try:
        if lowered == "now":
            return now.astimezone(UTC)
        if lowered in _DAY_WORDS:
            midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return midnight + timedelta(days=_DAY_WORDS[lowered])
        offset = _OFFSET.fullmatch(lowered)
        if offset is not None:
            seconds = sum(
                int(amount) * _UNIT_SECONDS[unit]
                for amount, unit in _OFFSET_PART.findall(offset.group(2))
            )
            delta = timedelta(seconds=seconds)
            return (now + delta if offset.group(1) == "+" else now - delta).astimezone(UTC)
        return _absolute(word, zone_required)
    except OverflowError as exc:
        raise InstantError(text, f"{text!r} is out of range (years 1 to 9999)") from exc


def _absolute(text: str, zone_required: bool) -> datetime:
    forms = accepted_forms(zone_required=zone_required)
    # fromisoformat also takes forms ISO 8601 does not have (a space before the zone);
    # the digits-first check keeps words and offsets that fell through out of it.
    if not text[:4].isdigit():
        raise InstantError(text, f"{text!r} is not a time: give {forms}")
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError as exc:
        raise InstantError(text, f"{text!r} is not a time: give {forms}") from exc
    if moment.tzinfo is None:
        if zone_required and ("T" in text or " " in text):
            raise InstantError(text, f"{text!r} has no time zone: add one, e.g. {text}Z for UTC")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_instant(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second unless there are microseconds."""
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
