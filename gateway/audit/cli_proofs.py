"""The offline proof commands: `audit prove`, `check-proof`, `consistency`, `check-consistency`.

`prove` and `consistency` build a proof from a store and write it as JSON; `check-proof`
and `check-consistency` verify one with nothing but the verifier key (and, for
consistency, the older checkpoint the auditor kept).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.arguments import existing_file, new_file, non_negative_integer
from gateway.audit.cli_inputs import (
    checkpoint_file,
    key_argument,
    note_text,
    readable_store,
    store_argument,
)
from gateway.audit.errors import IntegrityError, NoteError, ProofError, RecordError
from gateway.audit.note import NoteVerifier, open_checkpoint, parse_checkpoint
from gateway.audit.proofs import StoredTree
from gateway.audit.tree import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.verify import check_record

__all__ = ["register_proof_commands"]

_OK = 0

Command = Callable[[argparse.Namespace], int]


def register_proof_commands(commands: Any, guard: Callable[[Command], Command]) -> None:
    """Add the four proof commands to the `audit` sub-parsers; `guard` maps their errors."""
    prove = commands.add_parser(
        "prove",
        help="an inclusion proof bundle for one record",
        description="Write a proof bundle (the record, its inclusion proof and the latest "
        "signed checkpoint) that `audit check-proof` verifies offline.",
    )
    store_argument(prove)
    prove.add_argument(
        "--index",
        type=non_negative_integer,
        required=True,
        metavar="N",
        help="the record's leaf index",
    )
    prove.add_argument(
        "--out", type=new_file, metavar="FILE", help="write the bundle here (default: stdout)"
    )
    prove.set_defaults(func=guard(_prove))

    check = commands.add_parser(
        "check-proof",
        help="verify an inclusion proof bundle offline",
        description="Verify a bundle written by `audit prove`: the checkpoint's signature, "
        "then the record's inclusion proof against it.",
    )
    check.add_argument(
        "--bundle",
        type=existing_file,
        required=True,
        metavar="FILE",
        help="the proof bundle (JSON from `audit prove`)",
    )
    key_argument(check, required=True)
    check.set_defaults(func=guard(_check_proof))

    consistency = commands.add_parser(
        "consistency",
        help="prove the log extends an old checkpoint",
        description="Build the consistency proof from an old checkpoint to the store's "
        "latest one and verify it; print it (or write it with --out) for "
        "`audit check-consistency`.",
    )
    store_argument(consistency)
    consistency.add_argument(
        "--old",
        type=existing_file,
        required=True,
        metavar="FILE",
        help="a signed checkpoint kept earlier",
    )
    key_argument(consistency, required=False)
    consistency.add_argument(
        "--out", type=new_file, metavar="FILE", help="write the proof here (default: stdout)"
    )
    consistency.set_defaults(func=guard(_consistency))

    check_consistency = commands.add_parser(
        "check-consistency",
        help="verify a consistency proof offline",
        description="Verify a proof written by `audit consistency`: both checkpoints' "
        "signatures, then that the new tree extends the old one unchanged.",
    )
    check_consistency.add_argument(
        "--old",
        type=existing_file,
        required=True,
        metavar="FILE",
        help="the older signed checkpoint (one you kept)",
    )
    check_consistency.add_argument(
        "--new",
        type=existing_file,
        metavar="FILE",
        help="the newer signed checkpoint (default: the one inside the proof file)",
    )
    check_consistency.add_argument(
        "--proof",
        type=existing_file,
        required=True,
        metavar="FILE",
        help="the proof (JSON from `audit consistency`)",
    )
    key_argument(check_consistency, required=True)
    check_consistency.set_defaults(func=guard(_check_consistency))


def _prove(args: argparse.Namespace) -> int:
    with readable_store(args.store) as store:
        latest = store.latest_checkpoint()
        if latest is None:
            raise RecordError("the store has no signed checkpoint yet")
        if args.index >= latest.tree_size:
            raise RecordError(
                f"--index {args.index} is not covered by the latest signed checkpoint "
                f"(size {latest.tree_size}: indexes 0 to {latest.tree_size - 1})"
            )
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
        print(
            f"wrote the inclusion proof of record {args.index} in the tree of size "
            f"{latest.tree_size} to {args.out}; check it with `gateway audit check-proof "
            f"--bundle {args.out} --key KEY`"
        )
    else:
        sys.stdout.write(text)
    return _OK


def _check_proof(args: argparse.Namespace) -> int:
    verifier: NoteVerifier = args.key
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8-sig"))
        data = base64.b64decode(bundle["record"], validate=True)
        index = bundle["leaf_index"]
        tree_size = bundle["tree_size"]
        proof = [base64.b64decode(item, validate=True) for item in bundle["proof"]]
        note = bundle["checkpoint"]
        if type(index) is not int or type(tree_size) is not int or not isinstance(note, str):
            raise TypeError("bundle fields have the wrong types")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RecordError(
            f"--bundle {args.bundle}: not a proof bundle (the JSON `gateway audit prove` "
            "writes: record, leaf_index, tree_size, proof, checkpoint)"
        ) from exc
    try:
        checkpoint = open_checkpoint(note, verifier)
    except NoteError as exc:
        raise NoteError(f"--bundle {args.bundle}: its checkpoint: {exc.reason}") from exc
    if checkpoint.tree_size != tree_size:
        raise ProofError("bundle tree size differs from its checkpoint")
    check_record(data, index)
    verify_inclusion(index, tree_size, leaf_hash(data), proof, checkpoint.root_hash)
    print(f"OK: record {index} is in the tree of size {tree_size} signed by {verifier.name}")
    return _OK


def _consistency(args: argparse.Namespace) -> int:
    verifier: NoteVerifier | None = args.key
    old = checkpoint_file(args.old, "--old", verifier)
    with readable_store(args.store) as store:
        latest = store.latest_checkpoint()
        if latest is None:
            raise RecordError("the store has no signed checkpoint yet")
        if verifier is not None:
            new = open_checkpoint(latest.note, verifier)
        else:
            new = parse_checkpoint(note_text(latest.note))
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
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        signed = "" if verifier is not None else " (signatures not checked: no --key)"
        print(
            f"wrote the consistency proof from size {old.tree_size} to size "
            f"{new.tree_size} to {args.out}{signed}; check it with `gateway audit "
            f"check-consistency --old {args.old} --proof {args.out} --key KEY`"
        )
    else:
        sys.stdout.write(text)
    return _OK


def _check_consistency(args: argparse.Namespace) -> int:
    verifier: NoteVerifier = args.key
    try:
        document = json.loads(args.proof.read_text(encoding="utf-8-sig"))
        old_size, new_size = document["old_size"], document["new_size"]
        proof = [base64.b64decode(item, validate=True) for item in document["proof"]]
        note = document["checkpoint"]
        if type(old_size) is not int or type(new_size) is not int or not isinstance(note, str):
            raise TypeError("proof fields have the wrong types")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RecordError(
            f"--proof {args.proof}: not a consistency proof (the JSON `gateway audit "
            "consistency` writes: old_size, new_size, proof, checkpoint)"
        ) from exc
    old = checkpoint_file(args.old, "--old", verifier)
    if args.new is not None:
        new = checkpoint_file(args.new, "--new", verifier)
    else:
        try:
            new = open_checkpoint(note, verifier)
        except NoteError as exc:
            raise NoteError(f"--proof {args.proof}: its checkpoint: {exc.reason}") from exc
    if old_size != old.tree_size:
        raise ProofError(
            f"the proof starts at size {old_size}, the --old checkpoint is at size {old.tree_size}"
        )
    if new_size != new.tree_size:
        raise ProofError(
            f"the proof ends at size {new_size}, the new checkpoint is at size {new.tree_size}"
        )
    verify_consistency(old.tree_size, new.tree_size, proof, old.root_hash, new.root_hash)
    print(
        f"OK: the tree of size {new.tree_size} signed by {verifier.name} extends the tree "
        f"of size {old.tree_size} unchanged"
    )
    return _OK
