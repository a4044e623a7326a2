"""The `gateway audit ...` and `gateway keys ...` commands.

Exit codes: 0 success, 1 the log or a proof failed verification, 2 bad input
(missing file, unreadable store, malformed key or bundle).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.audit.copying import backup_store, copy_store, tree_head_of
from gateway.audit.errors import AuditError, IntegrityError, NoteError, ProofError, RecordError
from gateway.audit.keys import generate_keys, load_verifier
from gateway.audit.note import open_checkpoint, parse_checkpoint
from gateway.audit.ocsf import to_ocsf
from gateway.audit.proofs import StoredTree
from gateway.audit.records import RecordFilter
from gateway.audit.stores import (
    SCHEMA_VERSION,
    AuditStore,
    SQLiteAuditStore,
    describe_location,
    open_store,
    parse_location,
)
from gateway.audit.tree import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.verify import check_fields, check_record, verify_store

__all__ = ["register"]

_OK, _FAILED, _BAD_INPUT = 0, 1, 2
_STORE_HELP = "a SQLite file, sqlite:///path or a postgresql:// URL"


def register(subparsers: Any) -> None:
    """Add the `audit` and `keys` command groups to an argparse sub-parser collection."""
    audit = subparsers.add_parser("audit", help="verify, query and prove the audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    verify = commands.add_parser("verify", help="verify every record and checkpoint")
    verify.add_argument("--store", required=True, help=_STORE_HELP)
    verify.add_argument("--key", type=Path, required=True, help="verifier key file")
    verify.add_argument(
        "--trusted-checkpoint",
        type=Path,
        help="a checkpoint kept earlier: the log must extend it, and records after the"
        " newest signed checkpoint count as a failure",
    )
    verify.add_argument(
        "--require-signed",
        action="store_true",
        help="fail if records follow the newest signed checkpoint (an unsigned tail)",
    )
    verify.set_defaults(func=_guarded(_verify))

    backup = commands.add_parser(
        "backup", help="a consistent, verified copy of a store (also while gateways write)"
    )
    backup.add_argument("--store", required=True, help=_STORE_HELP)
    backup.add_argument("--key", type=Path, required=True, help="verifier key file")
    backup.add_argument("--trusted-checkpoint", type=Path, help="a checkpoint kept earlier")
    backup.add_argument("destination", type=Path, help="the new SQLite file to write")
    backup.set_defaults(func=_guarded(_backup))

    copy = commands.add_parser(
        "copy", help="copy a log into an empty store (SQLite <-> PostgreSQL), then verify it"
    )
    copy.add_argument("source", help="the store to copy from (" + _STORE_HELP + ")")
    copy.add_argument("destination", help="an empty or new store to copy into")
    copy.add_argument("--key", type=Path, required=True, help="verifier key file")
    copy.add_argument("--trusted-checkpoint", type=Path, help="a checkpoint kept earlier")
    copy.set_defaults(func=_guarded(_copy))

    migrate = commands.add_parser(
        "migrate", help="bring a store to the schema this gateway writes (creating it if new)"
    )
    migrate.add_argument("--store", required=True, help=_STORE_HELP)
    migrate.set_defaults(func=_guarded(_migrate))

    query = commands.add_parser("query", help="print matching records as JSON lines")
    query.add_argument("--store", required=True, help=_STORE_HELP)
    for name in ("since", "until", "subject", "organisation", "model", "reason", "kind"):
        query.add_argument(f"--{name}")
    query.add_argument("--request-id", dest="request_id")
    query.add_argument("--decision", choices=("allow", "deny"))
    query.add_argument("--limit", type=int, default=1000)
    query.set_defaults(func=_guarded(_query))

    prove = commands.add_parser("prove", help="an inclusion proof bundle for one record")
    prove.add_argument("--store", required=True, help=_STORE_HELP)
    prove.add_argument("--index", type=int, required=True)
    prove.add_argument("--out", type=Path)
    prove.set_defaults(func=_guarded(_prove))

    check = commands.add_parser("check-proof", help="verify a proof bundle offline")
    check.add_argument("--bundle", type=Path, required=True)
    check.add_argument("--key", type=Path, required=True)
    check.set_defaults(func=_guarded(_check_proof))

    consistency = commands.add_parser("consistency", help="prove the log extends an old checkpoint")
    consistency.add_argument("--store", required=True, help=_STORE_HELP)
    consistency.add_argument("--old", type=Path, required=True)
    consistency.add_argument("--key", type=Path)
    consistency.set_defaults(func=_guarded(_consistency))

    checkpoint = commands.add_parser("checkpoint", help="print the latest signed checkpoint")
    checkpoint.add_argument("--store", required=True, help=_STORE_HELP)
    checkpoint.set_defaults(func=_guarded(_checkpoint))

    export = commands.add_parser("export", help="export records as JSON lines or OCSF")
    export.add_argument("--store", required=True, help=_STORE_HELP)
    export.add_argument("--format", choices=("jsonl", "ocsf"), default="jsonl")
    export.set_defaults(func=_guarded(_export))

    keys = subparsers.add_parser("keys", help="generate audit keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    generate = key_commands.add_parser("generate", help="write new audit signing and HMAC keys")
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--name", required=True, help="key name and checkpoint origin")
    generate.set_defaults(func=_guarded(_generate))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Map the audit errors to exit codes and one-line messages on stderr."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
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


@contextmanager
def _open_store(location: str, *, readonly: bool = True) -> Iterator[AuditStore]:
    store = open_store(parse_location(str(location)), readonly=readonly)
    try:
        yield store
    finally:
        store.close()


def _read_note(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None else None


def _verify(args: argparse.Namespace) -> int:
    verifier = load_verifier(args.key)
    trusted = _read_note(args.trusted_checkpoint)

    def progress(size: int) -> None:
        print(f"verified {size} records", file=sys.stderr)

    with _open_store(args.store) as store:
        result = verify_store(
            store,
            verifier,
            trusted=trusted,
            require_signed=args.require_signed,
            progress=progress,
        )
        latest = store.latest_checkpoint()
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
    return _OK


def _backup(args: argparse.Namespace) -> int:
    verifier = load_verifier(args.key)
    with _open_store(args.store) as store:
        result = backup_store(
            store, args.destination, verifier, trusted=_read_note(args.trusted_checkpoint)
        )
    print(
        f"OK: backed up {result.verified.tree_size} records and {result.checkpoints}"
        f" checkpoints to {args.destination}; the copy verifies"
        + (f" ({result.verified.unsigned} unsigned)" if result.verified.unsigned else "")
    )
    return _OK


def _copy(args: argparse.Namespace) -> int:
    verifier = load_verifier(args.key)
    destination_location = parse_location(args.destination)
    with _open_store(args.source) as source:
        destination = open_store(destination_location)
        try:
            destination.require_current()
            result = copy_store(
                source, destination, verifier, trusted=_read_note(args.trusted_checkpoint)
            )
        finally:
            destination.close()
    print(
        f"OK: copied {result.records} records and {result.checkpoints} checkpoints to"
        f" {describe_location(destination_location)}; the copy verifies"
    )
    return _OK


def _migrate(args: argparse.Namespace) -> int:
    location = parse_location(args.store)
    store = open_store(location)
    try:
        if not isinstance(store, SQLiteAuditStore) or store.version >= SCHEMA_VERSION:
            store.require_current()
            print(f"OK: {describe_location(location)} is at schema version {SCHEMA_VERSION}")
            return _OK
        head = tree_head_of(store)
        store.migrate(head)
    finally:
        store.close()
    print(
        f"OK: migrated {describe_location(location)} to schema version {SCHEMA_VERSION}"
        f" ({head.tree_size} records)"
    )
    return _OK


def _query(args: argparse.Namespace) -> int:
    record_filter = RecordFilter(
        since=args.since,
        until=args.until,
        kind=args.kind,
        request_id=args.request_id,
        subject=args.subject,
        organisation=args.organisation,
        model=args.model,
        decision=args.decision,
        reason=args.reason,
    )
    if args.limit < 1:
        raise RecordError("--limit must be at least 1")
    after, remaining = -1, args.limit
    out = sys.stdout
    with _open_store(args.store) as store:
        while remaining > 0:
            rows = store.query(record_filter, after, min(remaining, 10_000))
            if not rows:
                break
            for row in rows:
                check_fields(row)
                out.write(bytes(row.data).decode("utf-8") + "\n")
                after = row.index
            remaining -= len(rows)
    return _OK


def _prove(args: argparse.Namespace) -> int:
    with _open_store(args.store) as store:
        latest = store.latest_checkpoint()
        if latest is None or not 0 <= args.index < latest.tree_size:
            raise RecordError("record is not covered by a signed checkpoint")
        data = store.read_record(args.index)
        if data is None:
            raise IntegrityError("is missing from the store", index=args.index)
        proof = StoredTree(store).inclusion_proof(args.index, latest.tree_size)
    verify_inclusion(args.index, latest.tree_size, leaf_hash(data), proof, latest.root_hash)
    bundle = {
        "record": base64.b64encode(data).decode(),
        "leaf_index": args.index,
        "tree_size": latest.tree_size,
        "proof": [base64.b64encode(hash_).decode() for hash_ in proof],
        "checkpoint": latest.note,
    }
    text = json.dumps(bundle, indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return _OK


def _check_proof(args: argparse.Namespace) -> int:
    verifier = load_verifier(args.key)
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
        data = base64.b64decode(bundle["record"], validate=True)
        index = bundle["leaf_index"]
        tree_size = bundle["tree_size"]
        proof = [base64.b64decode(item, validate=True) for item in bundle["proof"]]
        note = bundle["checkpoint"]
        if type(index) is not int or type(tree_size) is not int or not isinstance(note, str):
            raise TypeError("bundle fields have the wrong types")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RecordError("proof bundle is malformed") from exc
    checkpoint = open_checkpoint(note, verifier)
    if checkpoint.tree_size != tree_size:
        raise ProofError("bundle tree size differs from its checkpoint")
    check_record(data, index)
    verify_inclusion(index, tree_size, leaf_hash(data), proof, checkpoint.root_hash)
    print(f"OK: record {index} is in the tree of size {tree_size} signed by {verifier.name}")
    return _OK


def _consistency(args: argparse.Namespace) -> int:
    old_note = args.old.read_text(encoding="utf-8")
    verifier = load_verifier(args.key) if args.key else None
    with _open_store(args.store) as store:
        latest = store.latest_checkpoint()
        if latest is None:
            raise RecordError("the store has no checkpoint")
        if verifier is not None:
            old = open_checkpoint(old_note, verifier)
            new = open_checkpoint(latest.note, verifier)
        else:
            old = parse_checkpoint(_note_text(old_note))
            new = parse_checkpoint(_note_text(latest.note))
        if old.tree_size > new.tree_size:
            raise IntegrityError(
                f"is missing; the old checkpoint at size {old.tree_size} covers it (log truncated)",
                index=new.tree_size,
            )
        proof = StoredTree(store).consistency_proof(old.tree_size, new.tree_size)
    verify_consistency(old.tree_size, new.tree_size, proof, old.root_hash, new.root_hash)
    result = {
        "old_size": old.tree_size,
        "new_size": new.tree_size,
        "proof": [base64.b64encode(hash_).decode() for hash_ in proof],
        "checkpoint": latest.note,
    }
    print(json.dumps(result, indent=2))
    return _OK


def _note_text(note: str) -> str:
    split = note.rfind("\n\n")
    return note if split < 0 else note[: split + 1]


def _checkpoint(args: argparse.Namespace) -> int:
    with _open_store(args.store) as store:
        latest = store.latest_checkpoint()
    if latest is None:
        raise RecordError("the store has no checkpoint")
    sys.stdout.write(latest.note)
    return _OK


def _export(args: argparse.Namespace) -> int:
    out = sys.stdout
    with _open_store(args.store) as store:
        latest = store.latest_checkpoint()
        origin = parse_checkpoint(_note_text(latest.note)).origin if latest else ""
        for row in store.iter_records():
            data = bytes(row.data)
            if args.format == "jsonl":
                out.write(data.decode("utf-8") + "\n")
            else:
                event = to_ocsf(json.loads(data), origin)
                out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    return _OK


def _generate(args: argparse.Namespace) -> int:
    generate_keys(args.out, args.name)
    print(f"wrote audit keys for {args.name} to {args.out}")
    return _OK
