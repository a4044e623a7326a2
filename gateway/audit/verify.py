"""Verification of a whole stored log, as an auditor does it.

One pass in index order: every record is present exactly once, carries its own index,
is in canonical form, hashes to its stored leaf hash, and has the query columns its
bytes say (so no filter can hide or misreport it); every stored node hash is the one
the records give; the stored tree head matches the records; every stored checkpoint is
signed by the log's key and its root equals the root recomputed at its size; no
checkpoint (stored or trusted) covers records the store no longer has. Records after
the newest checkpoint are reported as an unsigned tail, never as verified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from gateway.audit.errors import IntegrityError, NoteError, RecordError
from gateway.audit.jcs import parse_canonical
from gateway.audit.note import Checkpoint, NoteVerifier, open_checkpoint
from gateway.audit.records import FIELD_NAMES, record_fields
from gateway.audit.stores.base import (
    NODE_LEVEL_STRIDE,
    AuditStore,
    SchemaError,
    StoredRecord,
    TreeHead,
)
from gateway.audit.tree import CompactRange, leaf_hash

__all__ = ["VerifiedLog", "check_fields", "check_record", "verify_store"]


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """The outcome of a successful verification.

    `tree_size` records are intact; the first `signed_size` of them are covered by a
    verified checkpoint, the rest (`unsigned`) only by the store's word.
    """

    tree_size: int
    root_hash: bytes
    state: CompactRange
    checkpoints_verified: int
    signed_size: int = 0

    @property
    def unsigned(self) -> int:
        """How many records follow the newest signed checkpoint."""
        return self.tree_size - self.signed_size


def check_record(data: bytes, index: int) -> dict[str, object]:
    """The record, or IntegrityError unless `data` is canonical JSON carrying `index`."""
    try:
        value = parse_canonical(data)
    except RecordError as exc:
        raise IntegrityError(exc.reason, index=index) from exc
    carried = value.get("index") if isinstance(value, dict) else None
    if type(carried) is not int or carried != index:
        raise IntegrityError(f"carries index {carried!r}", index=index)
    assert isinstance(value, dict)
    return value


def check_fields(row: StoredRecord, value: object = None) -> None:
    """IntegrityError unless the row's query columns are the ones its bytes give."""
    if value is None:
        try:
            value = orjson.loads(bytes(row.data))
        except orjson.JSONDecodeError as exc:
            raise IntegrityError("is not valid JSON", index=row.index) from exc
    if not isinstance(value, dict):
        raise IntegrityError("is not a JSON object", index=row.index)
    try:
        derived = record_fields(value)
    except RecordError as exc:
        raise IntegrityError(exc.reason, index=row.index) from exc
    if tuple(row.fields) != derived:
        differing = [
            name
            for name, stored, wanted in zip(FIELD_NAMES, row.fields, derived, strict=True)
            if stored != wanted or type(stored) is not type(wanted)
        ]
        raise IntegrityError(
            f"its query columns differ from the record ({', '.join(differing)})",
            index=row.index,
        )


def verify_store(
    store: AuditStore,
    verifier: NoteVerifier,
    *,
    trusted: str | None = None,
    check_canonical: bool = True,
    require_signed: bool = False,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
) -> VerifiedLog:
    """Verify every record, node, head and checkpoint of `store`; raises IntegrityError
    at the first fault, naming the index (or tree size) and the kind of damage.

    `trusted` is a signed checkpoint the auditor kept from earlier; it exposes a store
    that was truncated or rewritten together with its own checkpoints. With it, or with
    `require_signed`, records not covered by a signed checkpoint are a failure.
    `check_canonical=False` skips the canonical-form check (but not the columns').
    The whole pass reads one snapshot of the store, so it may run while gateways append.
    """
    with store.snapshot():
        return _verify_store(
            store, verifier, trusted, check_canonical, require_signed, progress, progress_every
        )


def _verify_store(
    store: AuditStore,
    verifier: NoteVerifier,
    trusted: str | None,
    check_canonical: bool,
    require_signed: bool,
    progress: Callable[[int], None] | None,
    progress_every: int,
) -> VerifiedLog:
    expected: dict[int, Checkpoint] = {}
    for stored in store.checkpoints():
        try:
            checkpoint = open_checkpoint(stored.note, verifier)
        except NoteError as exc:
            raise IntegrityError(exc.reason, tree_size=stored.tree_size) from exc
        if checkpoint.tree_size != stored.tree_size or checkpoint.root_hash != stored.root_hash:
            raise IntegrityError(
                "signed text differs from its stored size or root", tree_size=stored.tree_size
            )
        expected[checkpoint.tree_size] = checkpoint
    trusted_checkpoint: Checkpoint | None = None
    if trusted is not None:
        try:
            trusted_checkpoint = open_checkpoint(trusted, verifier)
        except NoteError as exc:
            raise IntegrityError(f"trusted checkpoint: {exc.reason}") from exc
        if trusted_checkpoint.tree_size in expected and (
            expected[trusted_checkpoint.tree_size].root_hash != trusted_checkpoint.root_hash
        ):
            raise IntegrityError(
                "root differs from the trusted checkpoint of the same size (log rewritten)",
                tree_size=trusted_checkpoint.tree_size,
            )

    state = CompactRange()
    nodes: dict[int, list[bytes]] = {}
    verified = 0
    for row in store.iter_records():
        index = row.index
        if index < state.size:
            raise IntegrityError("is stored twice", index=index)
        if index > state.size:
            missing = (
                f"records {state.size}..{index - 1} are"
                if index - state.size > 1
                else "this record is"
            )
            raise IntegrityError(f"is missing ({missing} not in the store)", index=state.size)
        if not isinstance(row.data, bytes | bytearray | memoryview):
            # Records are stored as bytes; any other type was written by someone else.
            raise IntegrityError("is not stored as bytes", index=index)
        data = bytes(row.data)
        value = check_record(data, index) if check_canonical else None
        check_fields(row, value)
        hash_ = leaf_hash(data)
        if hash_ != row.leaf_hash:
            raise IntegrityError("does not match its stored leaf hash", index=index)
        for level, node_index, node in state.append(hash_):
            if level % NODE_LEVEL_STRIDE == 0:
                found = nodes.setdefault(level, [])
                assert len(found) == node_index
                found.append(node)
        size = state.size
        if progress is not None and size % progress_every == 0:
            progress(size)
        reached = expected.get(size)
        if reached is not None:
            if state.root() != reached.root_hash:
                raise IntegrityError(
                    f"root does not match the records {_span(expected, size)}", tree_size=size
                )
            verified += 1
        if (
            trusted_checkpoint is not None
            and trusted_checkpoint.tree_size == size
            and state.root() != trusted_checkpoint.root_hash
        ):
            raise IntegrityError(
                "root differs from the trusted checkpoint (log rewritten)", tree_size=size
            )

    for covering in (*expected.values(), trusted_checkpoint):
        if covering is not None and covering.tree_size > state.size:
            raise IntegrityError(
                f"is missing; a checkpoint at size {covering.tree_size} covers it (log truncated)",
                index=state.size,
            )
    _verify_nodes(store, nodes)
    _verify_head(store, state)
    signed = max(expected, default=0)
    if trusted_checkpoint is not None and trusted_checkpoint.tree_size > signed:
        raise IntegrityError(
            f"the trusted checkpoint at size {trusted_checkpoint.tree_size} is not stored;"
            f" the newest stored checkpoint is at size {signed} (checkpoints removed)",
            tree_size=trusted_checkpoint.tree_size,
        )
    if (require_signed or trusted_checkpoint is not None) and state.size > signed:
        raise IntegrityError(
            f"records {signed}..{state.size - 1} ({state.size - signed}) are not covered by"
            " a signed checkpoint (unsigned tail)",
            index=signed,
        )
    return VerifiedLog(state.size, state.root(), state, verified, signed)


def _verify_nodes(store: AuditStore, nodes: dict[int, list[bytes]]) -> None:
    """Every stored node hash (the proof cache) is the one the records give."""
    levels = set(store.node_levels()) | {level for level in nodes if level > 0}
    for level in sorted(levels):
        wanted = nodes.get(level, [])
        position = 0  # the next node index the records give at this level
        for node_index, hash_ in store.iter_nodes(level):
            name = f"stored node {level}/{node_index}"
            if node_index < position:
                raise IntegrityError(f"{name} is stored twice")
            if node_index > position and position < len(wanted):
                raise IntegrityError(f"stored node {level}/{position} is missing")
            if node_index >= len(wanted):
                raise IntegrityError(f"{name} is not derived from any records")
            if hash_ != wanted[node_index]:
                raise IntegrityError(f"{name} does not match the records it covers")
            position = node_index + 1
        if position < len(wanted):
            raise IntegrityError(f"stored node {level}/{position} is missing")


def _verify_head(store: AuditStore, state: CompactRange) -> None:
    """The stored tree head (what the next append builds on) matches the records."""
    try:
        head = store.head()
    except SchemaError:
        return  # a store of the single-writer layout has no head
    if head != TreeHead(state.size, tuple(state.hashes)):
        if head.tree_size != state.size:
            raise IntegrityError(
                f"the stored tree head says {head.tree_size} records, the store holds {state.size}"
            )
        raise IntegrityError("the stored tree head's hashes do not match the records")


def _span(expected: dict[int, Checkpoint], size: int) -> str:
    """Which records a failed checkpoint implicates: those after the previous good one."""
    previous = max((s for s in expected if s < size), default=0)
    return f"(a record in {previous}..{size - 1} was altered)"
