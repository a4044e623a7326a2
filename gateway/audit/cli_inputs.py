"""What the audit commands read from the user: the store, a verifier key, checkpoint files.

Every error names the option and the file it came from.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.arguments import existing_file
from gateway.audit.errors import NoteError, RecordError
from gateway.audit.keys import load_verifier
from gateway.audit.note import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint,
    read_note_file,
)
from gateway.audit.store import SQLiteAuditStore

__all__ = [
    "TIMES",
    "checkpoint_file",
    "key_argument",
    "note_text",
    "readable_store",
    "store_argument",
    "verifier_key",
]

TIMES = "ISO 8601 (no zone means UTC), a date, now, today, yesterday, or -30m, -2h, -1d"


def store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=existing_file,
        required=True,
        metavar="FILE",
        help="the audit store (SQLite), e.g. var/audit.db",
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


@contextmanager
def readable_store(path: Path) -> Iterator[SQLiteAuditStore]:
    """The store at `path`, or a RecordError naming --store when it is not one."""
    try:
        store = SQLiteAuditStore(path, readonly=True)
    except sqlite3.Error as exc:
        raise RecordError(f"--store {path}: not a readable audit store ({exc})") from exc
    try:
        store.size()  # fails here, with a clear message, on a file that is no store
    except sqlite3.Error as exc:
        store.close()
        raise RecordError(f"--store {path}: not a readable audit store ({exc})") from exc
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
