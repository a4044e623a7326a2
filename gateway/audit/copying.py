"""Moving a log between stores: copy (any store to any store), backup, and migration.

A log is append-only, so everything up to the head read when a copy starts is final:
copying those records and the checkpoints over them gives a consistent copy even while
gateways keep appending to the source. The copy keeps the records' bytes, the
checkpoints' signed notes and the witnesses' cosignatures exactly; the destination
recomputes its own hashes and head as it goes, and is verified with the log's key
before the copy is called done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.errors import IntegrityError, RecordError
from gateway.audit.note import NoteVerifier
from gateway.audit.records import Fields
from gateway.audit.stores import (
    NODE_LEVEL_STRIDE,
    AppendedBatch,
    AuditStore,
    BatchBuilder,
    SchemaError,
    SQLiteAuditStore,
    StoredRecord,
    TreeHead,
)
from gateway.audit.tree import CompactRange, leaf_hash
from gateway.audit.verify import VerifiedLog, check_fields, verify_store

__all__ = ["CopyResult", "backup_store", "copy_store", "source_size", "tree_head_of"]

_BATCH = 2048


@dataclass(frozen=True, slots=True)
class CopyResult:
    """How much was copied, and the destination's verification."""

    records: int
    checkpoints: int
    verified: VerifiedLog


def source_size(store: AuditStore) -> int:
    """The committed size of a store's tree (its head, or its records for the old layout)."""
    try:
        return store.head().tree_size
    except SchemaError:
        return tree_head_of(store).tree_size


def tree_head_of(store: AuditStore) -> TreeHead:
    """The head the records give, re-hashed from their bytes (for a store without one)."""
    state = CompactRange()
    for row in store.iter_records():
        _check_row(row, state.size)
        state.append(leaf_hash(bytes(row.data)))
    return TreeHead(state.size, tuple(state.hashes))


def copy_store(
    source: AuditStore,
    destination: AuditStore,
    verifier: NoteVerifier,
    *,
    trusted: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy every record and checkpoint of `source` into the empty `destination`, then
    verify the destination with `verifier` (and `trusted`, a checkpoint kept earlier)."""
    if destination.head().tree_size or destination.latest_checkpoint() is not None:
        raise RecordError(f"the destination store {destination.url} is not empty")
    size = source_size(source)
    checkpoints = [c for c in source.checkpoints() if c.tree_size <= size]
    batch: list[StoredRecord] = []
    copied = 0
    for row in source.iter_records():
        if row.index >= size:
            break
        batch.append(row)
        if len(batch) == _BATCH:
            copied = _write(destination, batch)
            batch = []
            if progress is not None:
                progress(copied)
    if batch:
        copied = _write(destination, batch)
    if copied != size:
        raise IntegrityError(
            f"is missing from the source ({copied} of {size} copied)", index=copied
        )
    for checkpoint in checkpoints:
        destination.add_checkpoint(checkpoint)
    sizes = {checkpoint.tree_size for checkpoint in checkpoints}
    destination.add_cosignatures([c for c in source.cosignatures() if c.tree_size in sizes])
    verified = verify_store(destination, verifier, trusted=trusted)
    return CopyResult(copied, len(checkpoints), verified)


def backup_store(
    source: AuditStore, destination: Path, verifier: NoteVerifier, *, trusted: str | None = None
) -> CopyResult:
    """A consistent copy of `source` in a new SQLite file, verified with `verifier`.

    A SQLite source is copied with SQLite's online backup API (a snapshot, whatever
    other processes write meanwhile); any other store is copied record by record.
    """
    if destination.exists():
        raise RecordError(f"{destination} exists; a backup is written to a new file")
    if isinstance(source, SQLiteAuditStore):
        source.backup(destination)
        copy = SQLiteAuditStore(destination, readonly=True)
        try:
            verified = verify_store(copy, verifier, trusted=trusted)
        finally:
            copy.close()
        return CopyResult(verified.tree_size, verified.checkpoints_verified, verified)
    target = SQLiteAuditStore(destination)
    try:
        return copy_store(source, target, verifier, trusted=trusted)
    finally:
        target.close()


def _write(destination: AuditStore, rows: Sequence[StoredRecord]) -> int:
    appended = destination.append(_copied_rows(rows))
    return appended.head.tree_size


def _copied_rows(rows: Sequence[StoredRecord]) -> BatchBuilder:
    """A builder that appends records already carrying their indexes, byte for byte."""

    def build(head: TreeHead) -> AppendedBatch:
        state = head.state()
        out: list[tuple[bytes, bytes, Fields]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for row in rows:
            _check_row(row, state.size)
            data = bytes(row.data)
            hash_ = leaf_hash(data)
            out.append((data, hash_, row.fields))
            for level, index, node in state.append(hash_):
                if level % NODE_LEVEL_STRIDE == 0:
                    nodes.append((level, index, node))
        return AppendedBatch(head.tree_size, out, nodes, TreeHead(state.size, tuple(state.hashes)))

    return build


def _check_row(row: StoredRecord, expected: int) -> None:
    if row.index != expected:
        damage = "is stored twice" if row.index < expected else "is missing"
        raise IntegrityError(damage, index=min(row.index, expected))
    if not isinstance(row.data, bytes | bytearray | memoryview):
        raise IntegrityError("is not stored as bytes", index=row.index)
    if leaf_hash(bytes(row.data)) != row.leaf_hash:
        raise IntegrityError("does not match its stored leaf hash", index=row.index)
    check_fields(row)
