"""What every audit store provides: the `AuditStore` protocol and the values it moves.

A store keeps, in one database that any number of gateway processes share:

- the tree head: one row with the tree size and its compact-range frontier (the roots
  of the perfect subtrees, largest first). Every append locks this row, so appends from
  all processes are sequenced by the database, not by an elected leader;
- records: index, canonical bytes (verbatim), leaf hash, and the query columns
  (derived from the bytes by `record_fields`; `verify` derives them again and compares);
- node hashes of complete subtrees at every level that is a multiple of
  `NODE_LEVEL_STRIDE` (level 0 is the leaf hash beside each record), so any proof
  is built from O(log n) small reads while storing only about n/15 extra hashes;
- signed checkpoints, each over a committed head;
- witness cosignatures (C2SP tlog-cosignature lines) of those checkpoints.

The protocol is synchronous: the log calls it from its writer and reader threads, each
with its own connection. Database errors surface as `StoreError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.audit.errors import AuditError, IntegrityError
from gateway.audit.records import Fields, RecordFilter
from gateway.audit.tree import HASH_SIZE, CompactRange

__all__ = [
    "NODE_LEVEL_STRIDE",
    "SCHEMA_VERSION",
    "AppendedBatch",
    "AuditStore",
    "BatchBuilder",
    "CheckpointSigner",
    "SchemaError",
    "StoreError",
    "StoredCheckpoint",
    "StoredCosignature",
    "StoredRecord",
    "TreeHead",
]

NODE_LEVEL_STRIDE = 4
SCHEMA_VERSION = 1
"""The store layout this gateway writes. 0 is the single-writer layout without a tree
head; `gateway audit migrate` brings a store to this version."""


class StoreError(AuditError):
    """The database failed, is unreachable, or is locked beyond the wait allowed."""


class SchemaError(StoreError):
    """The store's schema is not the one this gateway reads (`version` says which)."""

    def __init__(self, reason: str, version: int | None) -> None:
        super().__init__(reason)
        self.version = version


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The committed size of the tree and the frontier its next appends build on."""

    tree_size: int
    frontier: tuple[bytes, ...]

    @classmethod
    def from_blob(cls, tree_size: int, blob: bytes) -> TreeHead:
        """Read a head as stored: the frontier hashes concatenated."""
        if len(blob) % HASH_SIZE or len(blob) // HASH_SIZE != bin(tree_size).count("1"):
            raise IntegrityError("the stored tree head is malformed")
        return cls(
            tree_size, tuple(blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))
        )

    def blob(self) -> bytes:
        return b"".join(self.frontier)

    def state(self) -> CompactRange:
        """A compact range positioned at this head."""
        return CompactRange(self.tree_size, self.frontier)

    def root(self) -> bytes:
        return self.state().root()


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: its size, root, signed note text and signing time."""

    tree_size: int
    root_hash: bytes
    note: str
    created_us: int = 0


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    """A witness's cosignature line on the checkpoint at `tree_size`, as stored: the
    witness name, its key ID, the cosignature's timestamp and the line itself."""

    tree_size: int
    witness: str
    key_id: bytes
    timestamp: int
    line: str


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored record row: index, canonical bytes, leaf hash and query columns."""

    index: int
    data: Any  # bytes as written; anything else was written by someone else
    leaf_hash: bytes
    fields: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AppendedBatch:
    """What one append transaction writes: rows from `start`, node hashes, the new head."""

    start: int
    rows: Sequence[tuple[bytes, bytes, Fields]]  # (canonical bytes, leaf hash, fields)
    nodes: Sequence[tuple[int, int, bytes]]
    head: TreeHead


BatchBuilder = Callable[[TreeHead], AppendedBatch]
"""Given the locked, committed head, the rows to write (pure computation, no I/O)."""

CheckpointSigner = Callable[[TreeHead, "StoredCheckpoint | None", Any], "StoredCheckpoint | None"]
"""Given the committed head, the latest checkpoint and the store (for proofs), the
checkpoint to add, or None when none is due."""


class AuditStore(Protocol):
    """Persistent storage for one audit log, safe for many writer processes at once."""

    url: str
    """Where the store is, without any password (for messages)."""

    def require_current(self) -> None:
        """Raise SchemaError unless the store is at this gateway's schema version."""

    def append(self, build: BatchBuilder) -> AppendedBatch:
        """In one transaction: lock and read the head, `build` the batch, write it, commit."""

    def head(self) -> TreeHead:
        """The committed tree head."""

    def snapshot(self) -> AbstractContextManager[None]:
        """Make the reads inside the block see one consistent state of the store, however
        many processes append meanwhile (a read transaction)."""

    def sign_checkpoint(
        self, sign: CheckpointSigner, *, wait: bool = False
    ) -> StoredCheckpoint | None:
        """Under the store's signer lock (one signer at a time across every process), call
        `sign` with the committed head and store what it returns. None when nothing was
        due or (unless `wait`) another process holds the lock."""

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint as given (copying a log)."""

    def iter_records(self, start: int = 0) -> Iterator[StoredRecord]:
        """Every record row from `start`, in index order."""

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        """`(node index, hash)` of the stored nodes at `level`, in index order."""

    def node_levels(self) -> list[int]:
        """The levels that have stored nodes."""

    def read_record(self, index: int) -> bytes | None:
        """One record's canonical bytes, or None."""

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes of complete subtrees `start..end-1` at a stored level (0: leaf hashes)."""

    def checkpoints(self) -> list[StoredCheckpoint]:
        """All stored checkpoints, smallest tree first."""

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree, or None."""

    def checkpoints_before(self, tree_size: int | None, limit: int) -> list[StoredCheckpoint]:
        """At most `limit` checkpoints smaller than `tree_size` (None: all), largest first."""

    def query(
        self, record_filter: RecordFilter, after_index: int, limit: int
    ) -> list[StoredRecord]:
        """Matching records with index > after_index, oldest first."""

    def next_checkpoint(self, tree_size: int) -> StoredCheckpoint | None:
        """The smallest checkpoint larger than `tree_size`, or None."""

    def add_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        """Store witness cosignatures (one already stored for its size and key is kept)."""

    def cosignatures(self, tree_size: int | None = None) -> list[StoredCosignature]:
        """The cosignatures of the checkpoint at `tree_size` (None: all, by tree size)."""

    def cosigned_size(self, witness: str, key_id: bytes) -> int:
        """The largest tree size the witness key has a stored cosignature for, or 0."""

    def close(self) -> None:
        """Release the store's resources (a SQLite writer checkpoints its WAL)."""
