"""Where the audit log keeps its records: the `AuditStore` protocol and its SQLite store.

The protocol is synchronous and small; the log calls it from one writer thread and one
reader thread, so a PostgreSQL store can implement the same methods with its own
connection per thread. A store keeps:

- records: index, canonical bytes (verbatim), leaf hash, and query columns;
- node hashes of complete subtrees at every level that is a multiple of
  `NODE_LEVEL_STRIDE` (level 0 is the leaf hash beside each record), so any proof
  is built from O(log n) small reads while storing only about n/15 extra hashes;
- signed checkpoints.

Errors from the database surface as `sqlite3.Error`; the log translates them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.audit.records import PreparedRecord, RecordFilter

__all__ = ["NODE_LEVEL_STRIDE", "AuditStore", "SQLiteAuditStore", "StoredCheckpoint"]

NODE_LEVEL_STRIDE = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    leaf_index   INTEGER PRIMARY KEY,
    data         BLOB NOT NULL,
    leaf_hash    BLOB NOT NULL,
    time_us      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    request_id   TEXT,
    subject      TEXT,
    organisation TEXT,
    model        TEXT,
    decision     TEXT,
    reason       TEXT
);
CREATE INDEX IF NOT EXISTS records_time ON records (time_us);
CREATE INDEX IF NOT EXISTS records_request ON records (request_id);
CREATE INDEX IF NOT EXISTS records_subject ON records (subject);
CREATE INDEX IF NOT EXISTS records_organisation ON records (organisation);
CREATE INDEX IF NOT EXISTS records_model ON records (model);
CREATE INDEX IF NOT EXISTS records_reason ON records (reason);
CREATE TABLE IF NOT EXISTS nodes (
    level      INTEGER NOT NULL,
    node_index INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (level, node_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size  INTEGER PRIMARY KEY,
    root_hash  BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: its size, root and signed note text."""

    tree_size: int
    root_hash: bytes
    note: str


class AuditStore(Protocol):
    """Persistent storage for the audit log; every write method is one transaction."""

    def append_batch(
        self,
        start: int,
        records: Sequence[tuple[PreparedRecord, bytes, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
    ) -> None:
        """Store `(record, canonical bytes, leaf hash)` at indexes start.. and node hashes."""

    def add_checkpoint(self, checkpoint: StoredCheckpoint, created_us: int) -> None:
        """Store a signed checkpoint."""

    def size(self) -> int:
        """The number of stored records (one past the highest index)."""

    def iter_records(self, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """`(index, bytes, leaf hash)` of every record from `start`, in index order."""

    def read_record(self, index: int) -> bytes | None:
        """One record's canonical bytes, or None."""

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes of complete subtrees `start..end-1` at a stored level (0: leaf hashes)."""

    def checkpoints(self) -> list[StoredCheckpoint]:
        """All stored checkpoints, smallest tree first."""

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree, or None."""

    def query(
        self, record_filter: RecordFilter, after_index: int, limit: int
    ) -> list[tuple[int, bytes]]:
        """`(index, bytes)` of matching records with index > after_index, oldest first."""

    def close(self) -> None:
        """Release the store's resources."""


class SQLiteAuditStore:
    """An `AuditStore` in one SQLite file (WAL journal, synchronous=FULL).

    `readonly` opens an existing file for reading only; otherwise the file and its
    folder are created if missing.
    """

    def __init__(self, path: Path, *, readonly: bool = False, busy_timeout_ms: int = 5000):
        self.path = path
        if readonly:
            if not path.exists():
                raise sqlite3.OperationalError("audit store does not exist")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._connection = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not readonly:
                self._connection.execute("PRAGMA journal_mode = WAL")
                self._connection.execute("PRAGMA synchronous = FULL")
                self._connection.executescript(_SCHEMA)
        except sqlite3.Error:
            self._connection.close()
            raise

    def append_batch(
        self,
        start: int,
        records: Sequence[tuple[PreparedRecord, bytes, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
    ) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        start + offset,
                        data,
                        hash_,
                        record.time_us,
                        record.kind,
                        record.request_id,
                        record.subject,
                        record.organisation,
                        record.model,
                        record.decision,
                        record.reason,
                    )
                    for offset, (record, data, hash_) in enumerate(records)
                ],
            )
            if nodes:
                connection.executemany("INSERT INTO nodes VALUES (?, ?, ?)", nodes)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def add_checkpoint(self, checkpoint: StoredCheckpoint, created_us: int) -> None:
        self._connection.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
            (checkpoint.tree_size, checkpoint.root_hash, checkpoint.note, created_us),
        )

    def size(self) -> int:
        row = self._connection.execute("SELECT max(leaf_index) FROM records").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def iter_records(self, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        cursor = self._connection.execute(
            "SELECT leaf_index, data, leaf_hash FROM records WHERE leaf_index >= ?"
            " ORDER BY leaf_index",
            (start,),
        )
        while rows := cursor.fetchmany(4096):
            yield from rows

    def read_record(self, index: int) -> bytes | None:
        row = self._connection.execute(
            "SELECT data FROM records WHERE leaf_index = ?", (index,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            rows = self._connection.execute(
                "SELECT leaf_hash FROM records WHERE leaf_index >= ? AND leaf_index < ?"
                " ORDER BY leaf_index",
                (start, end),
            ).fetchall()
        else:
            rows = self._connection.execute(
                "SELECT hash FROM nodes WHERE level = ? AND node_index >= ? AND node_index < ?"
                " ORDER BY node_index",
                (level, start, end),
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._connection.execute(
            "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size"
        ).fetchall()
        return [StoredCheckpoint(int(size), bytes(root), str(note)) for size, root, note in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._connection.execute(
            "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))

    def query(
        self, record_filter: RecordFilter, after_index: int, limit: int
    ) -> list[tuple[int, bytes]]:
        conditions = ["leaf_index > ?"]
        parameters: list[object] = [after_index]
        since, until = record_filter.bounds()
        if since is not None:
            conditions.append("time_us >= ?")
            parameters.append(since)
        if until is not None:
            conditions.append("time_us <= ?")
            parameters.append(until)
        for column, value in record_filter.equalities().items():
            # Column names come from RecordFilter's fixed field list, never from input.
            conditions.append(f"{column} = ?")
            parameters.append(value)
        parameters.append(limit)
        sql = (
            "SELECT leaf_index, data FROM records WHERE "  # noqa: S608 - fixed column names
            + " AND ".join(conditions)
            + " ORDER BY leaf_index LIMIT ?"
        )
        rows = self._connection.execute(sql, parameters).fetchall()
        return [(int(index), bytes(data)) for index, data in rows]

    def close(self) -> None:
        self._connection.close()
