"""The `gateway audit ...` and `gateway keys ...` commands.

Exit codes: 0 success, 1 the log or a proof failed verification, 2 bad input
(missing file, unreadable store, malformed key or bundle).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.arguments import instant, output_directory, positive_integer
from gateway.audit.cli_inputs import (
    STORE_HELP,
    TIMES,
    key_argument,
    note_file,
    note_text,
    readable_store,
    store_argument,
    store_location,
)
from gateway.audit.cli_proofs import register_proof_commands
from gateway.audit.cli_witnesses import add_witness_arguments, check_witnesses, quorum_of
from gateway.audit.copying import backup_store, copy_store, tree_head_of
from gateway.audit.cosignature import attach_cosignatures
from gateway.audit.errors import AuditError, IntegrityError, NoteError, ProofError, RecordError
from gateway.audit.keys import generate_keys
from gateway.audit.note import NoteVerifier, parse_checkpoint
from gateway.audit.ocsf import to_ocsf
from gateway.audit.records import DECISIONS, KINDS, RecordFilter, format_time
from gateway.audit.stores import (
    SCHEMA_VERSION,
    SchemaError,
    SQLiteAuditStore,
    describe_location,
    open_store,
    parse_location,
)
from gateway.audit.verify import check_fields, verify_store

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

    verify = commands.add_parser(
        "verify",
        help="verify every record and checkpoint",
        description="Verify the whole log: every record, query column, node hash and the "
        "tree head against the record bytes, and every checkpoint's signature and root. "
        "Records after the newest checkpoint are reported as an unsigned tail.",
    )
    store_argument(verify)
    _key_and_trusted(verify)
    verify.add_argument(
        "--require-signed",
        action="store_true",
        help="fail if records follow the newest signed checkpoint (an unsigned tail)",
    )
    add_witness_arguments(verify)
    verify.set_defaults(func=_guarded(_verify))

    backup = commands.add_parser(
        "backup",
        help="a consistent, verified copy of a store, also while gateways write",
        description="Copy the store into a new SQLite file (SQLite's online backup API, or "
        "record by record from PostgreSQL up to its head), then verify the copy.",
    )
    store_argument(backup)
    _key_and_trusted(backup)
    backup.add_argument("destination", type=Path, metavar="DEST", help="the new SQLite file")
    backup.set_defaults(func=_guarded(_backup))

    copy = commands.add_parser(
        "copy",
        help="copy a log into an empty store (SQLite <-> PostgreSQL), then verify it",
        description="Copy every record and checkpoint byte for byte into an empty store, "
        "then verify the copy with the log's key.",
    )
    copy.add_argument("source", type=store_location, metavar="SOURCE", help=STORE_HELP)
    copy.add_argument(
        "destination", metavar="DEST", help="an empty or new store (a file path or a URL)"
    )
    _key_and_trusted(copy)
    copy.set_defaults(func=_guarded(_copy))

    migrate = commands.add_parser(
        "migrate",
        help="bring a store to the schema this gateway writes",
        description=f"Bring a store of the single-writer layout (schema 0) to schema "
        f"{SCHEMA_VERSION}; a store already current is left as it is.",
    )
    store_argument(migrate)
    migrate.set_defaults(func=_guarded(_migrate))

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

    checkpoint = commands.add_parser(
        "checkpoint",
        help="print the latest signed checkpoint, with the witnesses' cosignatures stored for it",
    )
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

    keys = subparsers.add_parser("keys", help="generate audit and identity assertion keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = key_commands.add_parser("generate", help="write new audit signing and HMAC keys")
    generate.add_argument(
        "--out",
        type=output_directory,
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
        except (AuditError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return _BAD_INPUT

    return run


def _key_and_trusted(parser: argparse.ArgumentParser) -> None:
    key_argument(parser, required=True)
    parser.add_argument(
        "--trusted-checkpoint",
        type=note_file,
        metavar="FILE",
        help="a signed checkpoint kept earlier: the log must still contain and extend it,"
        " and records after the newest signed checkpoint count as a failure",
    )


def _verify(args: argparse.Namespace) -> int:
    verifier: NoteVerifier = args.key
    trusted = args.trusted_checkpoint
    quorum = quorum_of(args)

    def progress(size: int) -> None:
        print(f"verified {size} records", file=sys.stderr)

    with readable_store(args.store) as store:
        result = verify_store(
            store,
            verifier,
            trusted=trusted,
            require_signed=args.require_signed,
            progress=progress,
        )
        # The newest checkpoint this verification covered, not one signed since it began.
        covered = store.checkpoints_before(result.signed_size + 1, 1)
        latest = covered[0] if covered and result.signed_size > 0 else None
        witnessed = check_witnesses(store, latest, trusted, args.witness, quorum)
    if latest is None:
        print(f"OK: no signed checkpoint yet; {result.tree_size} records are intact as stored")
    else:
        root = base64.b64encode(latest.root_hash).decode()
        print(
            f"OK: tree_size {result.signed_size} root {root}"
            f" ({result.checkpoints_verified} checkpoints verified)"
        )
    if result.unsigned:
        print(
            f"unsigned tail: records {result.signed_size}..{result.tree_size - 1}"
            f" ({result.unsigned}) follow the newest signed checkpoint; they are intact as"
            " stored but no signature covers them yet (--require-signed makes this a failure)"
        )
    for line in witnessed:
        print(line)
    return _OK


def _backup(args: argparse.Namespace) -> int:
    verifier: NoteVerifier = args.key
    with readable_store(args.store) as store:
        result = backup_store(store, args.destination, verifier, trusted=args.trusted_checkpoint)
    print(
        f"OK: backed up {result.verified.tree_size} records and {result.checkpoints}"
        f" checkpoints to {args.destination}; the copy verifies"
        + (f" ({result.verified.unsigned} unsigned)" if result.verified.unsigned else "")
    )
    return _OK


def _copy(args: argparse.Namespace) -> int:
    verifier: NoteVerifier = args.key
    destination_location = parse_location(args.destination)
    with readable_store(args.source) as source:
        destination = open_store(destination_location)
        try:
            destination.require_current()
            result = copy_store(source, destination, verifier, trusted=args.trusted_checkpoint)
        finally:
            destination.close()
    print(
        f"OK: copied {result.records} records and {result.checkpoints} checkpoints to"
        f" {describe_location(destination_location)}; the copy verifies"
    )
    return _OK


def _migrate(args: argparse.Namespace) -> int:
    where = describe_location(args.store)
    try:
        open_store(args.store, readonly=True).close()
    except SchemaError as exc:
        if exc.version is None:  # no tables: nothing to migrate, and nothing is created
            raise RecordError(
                f"--store {where}: holds no audit store, so there is nothing to migrate (a"
                " gateway creates a new store when it starts)"
            ) from exc
    store = open_store(args.store)
    try:
        if not isinstance(store, SQLiteAuditStore) or store.version >= SCHEMA_VERSION:
            store.require_current()
            print(f"OK: {describe_location(args.store)} is at schema version {SCHEMA_VERSION}")
            return _OK
        head = tree_head_of(store)
        store.migrate(head)
    finally:
        store.close()
    print(
        f"OK: migrated {describe_location(args.store)} to schema version {SCHEMA_VERSION}"
        f" ({head.tree_size} records)"
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
            for row in rows:
                check_fields(row)
                out.write(bytes(row.data).decode("utf-8") + "\n")
                after = row.index
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
        cosignatures = [c.line for c in store.cosignatures(latest.tree_size)] if latest else []
    if latest is None:
        raise RecordError("the store has no signed checkpoint yet")
    sys.stdout.write(attach_cosignatures(latest.note, cosignatures))
    return _OK


def _export(args: argparse.Namespace) -> int:
    out = sys.stdout
    with readable_store(args.store) as store:
        latest = store.latest_checkpoint()
        origin = parse_checkpoint(note_text(latest.note)).origin if latest else ""
        for row in store.iter_records():
            data = bytes(row.data)
            if args.format == "jsonl":
                out.write(data.decode("utf-8") + "\n")
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
