"""`gateway audit verify --witness VKEY ... --quorum K`: are the checkpoints witnessed?

The checks `verify` relies on are the newest stored checkpoint and the trusted one, if
given. Each must carry valid cosignatures (C2SP tlog-cosignature) from at least K
distinct listed witnesses: those stored with the checkpoint, and for the trusted
checkpoint also those in its file. Witnesses are distinct by public key (one key under
two names is one witness). A cosignature by a listed witness that does not verify, or
is dated more than five minutes ahead, fails the check: it was altered.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gateway.arguments import positive_integer
from gateway.audit.cosignature import CosignatureVerifier, note_parts, witnessed_by
from gateway.audit.errors import IntegrityError, NoteError, RecordError
from gateway.audit.note import parse_checkpoint
from gateway.audit.stores import AuditStore, StoredCheckpoint

__all__ = ["add_witness_arguments", "check_witnesses", "quorum_of", "witness_key"]

_FUTURE_SKEW_SECONDS = 300


def witness_key(text: str) -> CosignatureVerifier:
    """A witness verifier key given on the command line: the key itself, or a file."""
    try:
        return CosignatureVerifier.from_string(text)
    except NoteError as direct:
        path = Path(text)
        if not path.is_file():
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a witness key (<name>+<key ID>+<base64 key>) nor a"
                f" file holding one: {direct.reason}"
            ) from direct
    try:
        return CosignatureVerifier.from_string(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        reason = exc.reason if isinstance(exc, NoteError) else type(exc).__name__
        raise argparse.ArgumentTypeError(f"{text} is not a witness key file: {reason}") from exc


def add_witness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--witness",
        action="append",
        type=witness_key,
        default=[],
        metavar="VKEY",
        help="a witness's verifier key (the key, or a file holding it); repeat for each"
        " witness; the checkpoints relied on must be cosigned by --quorum of them",
    )
    parser.add_argument(
        "--quorum",
        type=positive_integer,
        metavar="K",
        help="how many distinct --witness keys must have cosigned (default: all of them)",
    )


def quorum_of(args: argparse.Namespace) -> int:
    """The quorum asked for; RecordError (exit 2) when no set of witnesses could meet it."""
    witnesses: list[CosignatureVerifier] = args.witness
    if args.quorum is not None and not witnesses:
        raise RecordError("argument --quorum: give the witnesses' keys with --witness")
    keys = [witness.public_key for witness in witnesses]
    if len(set(keys)) != len(keys):
        raise RecordError("argument --witness: the same public key is given twice")
    quorum: int = args.quorum if args.quorum is not None else len(witnesses)
    if quorum > len(witnesses):
        raise RecordError(
            f"argument --quorum: {quorum} is more than the {len(witnesses)} witnesses given"
        )
    return quorum


def check_witnesses(
    store: AuditStore,
    latest: StoredCheckpoint | None,
    trusted: str | None,
    witnesses: list[CosignatureVerifier],
    quorum: int,
) -> list[str]:
    """One line per checkpoint checked; IntegrityError when one lacks the quorum."""
    if not witnesses:
        return []
    if latest is None:
        raise IntegrityError("there is no signed checkpoint for the witnesses to have cosigned")
    relied_on = [("newest checkpoint", latest.note, latest.tree_size)]
    if trusted is not None:
        text, _ = note_parts(trusted)
        relied_on.append(("trusted checkpoint", trusted, parse_checkpoint(text).tree_size))
    not_after = int(time.time()) + _FUTURE_SKEW_SECONDS
    lines = []
    for label, note, size in relied_on:
        text, signatures = note_parts(note)
        stored = [c.line for c in store.cosignatures(size)]
        try:
            found = witnessed_by(text, [*signatures, *stored], witnesses, not_after=not_after)
        except NoteError as exc:
            raise IntegrityError(f"{label}: {exc.reason}", tree_size=size) from exc
        names = ", ".join(witness.name for witness in found) or "none"
        if len(found) < quorum:
            raise IntegrityError(
                f"{label}: cosigned by {len(found)} of the listed witnesses ({names}),"
                f" fewer than the quorum of {quorum}",
                tree_size=size,
            )
        lines.append(
            f"witnessed: {label} at size {size} cosigned by {len(found)} of"
            f" {len(witnesses)} listed witnesses ({names}); quorum {quorum}"
        )
    return lines
