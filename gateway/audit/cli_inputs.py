"""What the audit commands read from the user: the store, a verifier key, checkpoint files.

Every error names the option and the file it came from.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.arguments import existing_file
from gateway.audit.errors import AuditError, NoteError, RecordError
from gateway.audit.keys import load_verifier
from gateway.audit.note import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    read_note_file,
)
from gateway.audit.stores import (
    AuditStore,
    StoreLocation,
    describe_location,
    open_store,
    parse_location,
)

__all__ = [
    "STORE_HELP",
    "TIMES",
    "checkpoint_file",
    "key_argument",
    "note_text",
    "readable_store",
    "store_argument",
    "store_location",
    "verifier_key",
]

TIMES = "ISO 8601 (no zone means UTC), a date, now, today, yesterday, or -30m, -2h, -1d"


STORE_HELP = (
    "the audit store: a SQLite file (e.g. var/audit.db), sqlite:///path or postgresql://..."
)


def store_location(text: str) -> StoreLocation:
    """A store named on the command line: an existing SQLite file, or a PostgreSQL URL."""
    try:
        location = parse_location(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if isinstance(location, Path):
        existing_file(str(location))
    return location


def store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=store_location, required=True, metavar="STORE", help=STORE_HELP
    )


def key_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--key",
        type=verifier_key,
        required=required,
        metavar="FILE",
        help="the verifier key file (audit-signing.pub)"
        + ("" if required else "; without it, signatures are not checked"),
    )


def verifier_key(text: str) -> NoteVerifier:
    path = existing_file(text)
    try:
        return load_verifier(path)
    except (OSError, ValueError, NoteError) as exc:
        reason = exc.reason if isinstance(exc, NoteError) else str(exc)
        raise argparse.ArgumentTypeError(
            f"{text} is not a verifier key (<name>+<key hash>+<base64 key>): {reason}"
        ) from exc


def note_file(text: str) -> str:
    """The signed checkpoint in a file a user hands in (one kept earlier); its signature
    is checked where it is used, with the key given."""
    path = existing_file(text)
    try:
        note = read_note_file(path)
        parse_checkpoint(note_text(note))
        return note
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text} cannot be read ({exc.strerror})") from exc
    except NoteError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.reason}") from exc


@contextmanager
def readable_store(location: StoreLocation) -> Iterator[AuditStore]:
    """The store at `location`, read-only, or a RecordError naming --store when it is not
    one (or cannot be reached)."""
    try:
        store = open_store(location, readonly=True)
    except AuditError as exc:
        raise RecordError(
            f"--store {describe_location(location)}: not a readable audit store ({exc.reason})"
        ) from exc
    try:
        yield store
    finally:
        store.close()


def checkpoint_file(path: Path, option: str, verifier: NoteVerifier | None) -> Checkpoint:
    """The checkpoint in a file a user hands in; errors name `option` and the file."""
    try:
        note = read_note_file(path)
        if verifier is not None:
            return open_checkpoint(note, verifier)
        return parse_checkpoint(note_text(note))
    except NoteError as exc:
        raise NoteError(f"{option} {path}: {exc.reason}") from exc


def note_text(note: str) -> str:
    split = note.rfind("\n\n")
    return note if split < 0 else note[: split + 1]
