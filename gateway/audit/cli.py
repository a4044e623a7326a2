"""The `gateway audit ...` and `gateway keys ...` commands.

Exit codes: 0 success, 1 the log or a proof failed verification, 2 bad input
(missing file, unreadable store, malformed key or bundle).
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.arguments import instant, positive_integer
from gateway.audit.cli_inputs import TIMES, note_text, readable_store, store_argument
from gateway.audit.cli_proofs import register_proof_commands
from gateway.audit.errors import AuditError, IntegrityError, NoteError, ProofError, RecordError
from gateway.audit.keys import generate_keys, load_verifier
from gateway.audit.note import parse_checkpoint
from gateway.audit.ocsf import to_ocsf
from gateway.audit.records import DECISIONS, KINDS, RecordFilter, format_time
from gateway.audit.store import SQLiteAuditStore
from gateway.audit.verify import verify_store

__all__ = ["register"]

_OK, _FAILED, _BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `audit` and `keys` command groups to an argparse sub-parser collection."""
    audit = subparsers.add_parser(
        "audit",
        help="verify, query and prove the audit log",
        description="Read, verify and prove the audit log offline (docs/audit.md). "
        "Exit status: 0 success, 1 verification failed, 2 bad input.",
    )
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    verify = commands.add_parser("verify", help="verify every record and checkpoint")
    verify.add_argument("--store", type=Path, required=True, help="the audit store (SQLite)")
    verify.add_argument(
        "--key", type=Path, required=True, help="the verifier key file (audit-signing.pub)"
    )
    verify.add_argument(
        "--trusted-checkpoint",
        type=Path,
        help="a signed checkpoint kept earlier: the log must still contain and extend it",
    )
    verify.set_defaults(func=_guarded(_verify))

    query = commands.add_parser(
        "query",
        help="print matching records as JSON lines",
        description="Print the records that match every filter given, oldest first, one "
        "JSON record per line.",
    )
    store_argument(query)
    query.add_argument(
        "--since", type=instant(), metavar="TIME", help=f"records at or after TIME: {TIMES}"
    )
    query.add_argument(
        "--until", type=instant(), metavar="TIME", help="records at or before TIME (as --since)"
    )
    query.add_argument(
        "--kind",
        choices=KINDS,
        metavar="KIND",
        help=f"records of this kind only: {', '.join(KINDS)}",
    )
    query.add_argument(
        "--decision", choices=DECISIONS, metavar="DECISION", help="allow or deny: those only"
    )
    query.add_argument("--request-id", dest="request_id", help="records of this request id")
    query.add_argument("--subject", help="records of this caller (the principal's subject)")
    query.add_argument("--organisation", help="records of this (trusted) organisation")
    query.add_argument("--model", help="records naming this public model id")
    query.add_argument("--reason", help="records with this reason code, e.g. nationality.denied")
    query.add_argument(
        "--limit",
        type=positive_integer,
        default=1000,
        metavar="N",
        help="print at most N records (default: 1000)",
    )
    query.set_defaults(func=_guarded(_query))

    register_proof_commands(commands, _guarded)

    checkpoint = commands.add_parser("checkpoint", help="print the latest signed checkpoint")
    store_argument(checkpoint)
    checkpoint.set_defaults(func=_guarded(_checkpoint))

    export = commands.add_parser("export", help="export records as JSON lines or OCSF")
    store_argument(export)
    export.add_argument(
        "--format",
        choices=("jsonl", "ocsf"),
        default="jsonl",
        help="jsonl: the stored records; ocsf: OCSF API Activity events (default: jsonl)",
    )
    export.set_defaults(func=_guarded(_export))

    keys = subparsers.add_parser("keys", help="generate audit keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = key_commands.add_parser("generate", help="write new audit signing and HMAC keys")
    generate.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for audit-signing.key, audit-signing.pub and audit-hmac.key",
    )
    generate.add_argument(
        "--name", required=True, help="key name and checkpoint origin, e.g. gateway.example/audit"
    )
    generate.set_defaults(func=_guarded(_generate))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Map the audit errors to exit codes and one-line messages on stderr."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): `gateway.cli.main` ends quietly
        except (IntegrityError, ProofError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return _FAILED
        except NoteError as exc:
            print(f"FAILED: {exc.reason}", file=sys.stderr)
            return _FAILED
        except (AuditError, sqlite3.Error, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return _BAD_INPUT

    return run


@contextmanager
def _open_store(path: Path) -> Iterator[SQLiteAuditStore]:
    store = SQLiteAuditStore(path, readonly=True)
    try:
        yield store
    finally:
        store.close()


def _verify(args: argparse.Namespace) -> int:
    verifier = load_verifier(args.key)
    trusted = (
        args.trusted_checkpoint.read_text(encoding="utf-8") if args.trusted_checkpoint else None
    )

    def progress(size: int) -> None:
        print(f"verified {size} records", file=sys.stderr)

    with _open_store(args.store) as store:
        result = verify_store(store, verifier, trusted=trusted, progress=progress)
    root = base64.b64encode(result.root_hash).decode()
    print(
        f"OK: tree_size {result.tree_size} root {root}"
        f" ({result.checkpoints_verified} checkpoints verified)"
    )
    return _OK


def _query(args: argparse.Namespace) -> int:
    record_filter = RecordFilter(
        since=format_time(args.since) if args.since is not None else None,
        until=format_time(args.until) if args.until is not None else None,
        kind=args.kind,
        request_id=args.request_id,
        subject=args.subject,
        organisation=args.organisation,
        model=args.model,
        decision=args.decision,
        reason=args.reason,
    )
    if args.since is not None and args.until is not None and args.since > args.until:
        raise RecordError(
            f"--since ({record_filter.since}) is after --until ({record_filter.until}): "
            "no record could match"
        )
    after, remaining = -1, args.limit
    out = sys.stdout
    with readable_store(args.store) as store:
        while remaining > 0:
            rows = store.query(record_filter, after, min(remaining, 10_000))
            if not rows:
                break
            for index, data in rows:
                out.write(data.decode("utf-8") + "\n")
                after = index
            remaining -= len(rows)
        more = remaining == 0 and bool(store.query(record_filter, after, 1))
    # Records go to stdout; what is not a record goes to stderr, so pipes stay clean.
    if remaining == args.limit:
        print("no records match", file=sys.stderr)
    elif more:
        print(f"stopped at --limit {args.limit}; more records match", file=sys.stderr)
    return _OK


def _checkpoint(args: argparse.Namespace) -> int:
    with readable_store(args.store) as store:
        latest = store.latest_checkpoint()
    if latest is None:
        raise RecordError("the store has no signed checkpoint yet")
    sys.stdout.write(latest.note)
    return _OK


def _export(args: argparse.Namespace) -> int:
    out = sys.stdout
    with readable_store(args.store) as store:
        latest = store.latest_checkpoint()
        origin = parse_checkpoint(note_text(latest.note)).origin if latest else ""
        for _, data, _ in store.iter_records():
            if args.format == "jsonl":
                out.write(bytes(data).decode("utf-8") + "\n")
            else:
                event = to_ocsf(json.loads(data), origin)
                out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    return _OK


def _generate(args: argparse.Namespace) -> int:
    try:
        generate_keys(args.out, args.name)
    except NoteError as exc:
        raise RecordError(f"--name {args.name!r}: {exc.reason}") from exc
    except FileExistsError as exc:
        raise RecordError(
            f"--out {args.out}: {exc}; keys are never overwritten (choose another folder)"
        ) from exc
    print(f"wrote audit keys for {args.name} to {args.out}")
    return _OK
