"""The demo's clock (`make run AT=...`) and the audit store it writes to.

An audit log's record times only move forward. A demo run from `AT` would otherwise
write records dated before those a real-clock run (or a later `AT`) already wrote, so:

- the real clock writes `var/audit.db`; a clock from `AT` writes a store of its own,
  `var/audit-at-<AT>.db` (one per AT value);
- a store whose last record is later than the clock's start: a run from `AT` continues
  after that record (said on the terminal); a real-clock run refuses to start, as the
  real clock cannot be moved.

The certificates must be valid at the clock's start as well, or every caller gets 401
`cert.not_yet_valid` (or `cert.expired`): `check_material` says so before anything runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.audit import (
    AuditError,
    NoteError,
    SQLiteAuditStore,
    load_verifier,
    open_checkpoint,
)
from gateway.audit.copying import source_size
from gateway.demo.material import VALID_FROM, validity
from gateway.instants import format_instant

__all__ = [
    "DemoClock",
    "DemoError",
    "check_material",
    "check_store_key",
    "demo_clock",
    "store_for",
]

# How far past the last stored record a resumed clock starts.
_STEP = timedelta(milliseconds=1)
_LAST_RECORDS = 1000


class DemoError(Exception):
    """The demo cannot run as asked; the message says why and what to do instead."""


@dataclass(frozen=True, slots=True)
class DemoClock:
    """Where the demo's clock starts, how to read it, and the store it writes to."""

    start: datetime
    read: Callable[[], float]
    store: Path
    note: str | None = None  # what the terminal should be told about the start


def store_for(default: Path, at: datetime | None) -> Path:
    """`default` for the real clock; a store of its own for each `AT`."""
    if at is None:
        return default
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + (
        f".{at.microsecond:06d}Z" if at.microsecond else "Z"
    )
    return default.with_name(f"{default.stem}-at-{stamp}{default.suffix}")


def demo_clock(default_store: Path, at: datetime | None) -> DemoClock:
    """The clock for a demo run from `at` (None: the real clock) and its store."""
    store = store_for(default_store, at)
    last = _last_record_time(store)
    now = datetime.now(UTC)
    if at is None:
        if last is not None and last > now:
            raise DemoError(
                f"{store} holds records up to {format_instant(last)}, later than now: "
                "record times in one log only move forward. Move that file aside, or run "
                f"with AT= later than {format_instant(last)}."
            )
        return DemoClock(now, time.time, store)
    start, note = at, None
    if last is not None and last >= at:
        start = last + _STEP
        note = (
            f"{store} already holds records up to {format_instant(last)}: the clock "
            f"continues from {format_instant(start)}, so record times only move forward "
            f"(remove that file to start again from {format_instant(at)})"
        )
    origin, base = time.time(), start.timestamp()
    return DemoClock(start, lambda: base + (time.time() - origin), store, note)


def check_material(certificates: Path, start: datetime, at_given: bool) -> None:
    """Raise DemoError unless every demo certificate is valid at `start`."""
    not_before, not_after = validity(certificates)
    if not_before <= start < not_after:
        return
    span = f"{format_instant(not_before)} to {format_instant(not_after)}"
    reason = "cert.not_yet_valid" if start < not_before else "cert.expired"
    renew = (
        f"remove {certificates} and move var/ aside (its logs are signed with the audit key "
        "in there) to make new material"
    )
    if at_given:
        raise DemoError(
            f"AT={format_instant(start)} is outside the span in which the demo certificates "
            f"in {certificates} are valid ({span}): every caller would get 401 {reason}. "
            f"Choose an AT in that span, or {renew}, valid from {format_instant(VALID_FROM)}."
        )
    raise DemoError(
        f"the demo certificates in {certificates} are valid from {span}, not now: every "
        f"caller would get 401 {reason}. To run the demo, {renew}."
    )


def check_store_key(store: Path, verifier_file: Path) -> None:
    """Raise DemoError if `store` was signed with another audit key than `verifier_file`.

    The gateway would refuse such a store at start-up; this says why, and what to do,
    before anything starts (it happens when certs/dev is made again but var/ is kept).
    """
    if not store.exists():
        return
    try:
        reader = SQLiteAuditStore(store, readonly=True)
        try:
            latest = reader.latest_checkpoint()
        finally:
            reader.close()
    except AuditError as exc:
        raise DemoError(f"{store} is not a readable audit store ({exc})") from exc
    if latest is None:
        return
    try:
        open_checkpoint(latest.note, load_verifier(verifier_file))
    except NoteError as exc:
        raise DemoError(
            f"{store} was signed with another audit key than {verifier_file} "
            f"({exc.reason}); the demo material was made again since. Move that store "
            "aside (it still verifies with the key it was signed with) and run again."
        ) from exc


def _last_record_time(store: Path) -> datetime | None:
    if not store.exists():
        return None
    try:
        reader = SQLiteAuditStore(store, readonly=True)
    except AuditError as exc:
        raise DemoError(f"{store} is not a readable audit store ({exc})") from exc
    try:
        # Records are appended about in time order; a completion record can come a
        # request's duration after later requests, so look at the last stretch of them.
        start = max(0, source_size(reader) - _LAST_RECORDS)
        times = [json.loads(row.data)["time"] for row in reader.iter_records(start)]
    except AuditError as exc:
        raise DemoError(f"{store} is not a readable audit store ({exc})") from exc
    finally:
        reader.close()
    if not times:
        return None
    return max(datetime.fromisoformat(text.replace("Z", "+00:00")) for text in times)
