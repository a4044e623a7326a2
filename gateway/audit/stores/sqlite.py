"""The embedded store: one SQLite file (WAL journal, synchronous=FULL).

Several processes may append to one file: each batch is one `BEGIN IMMEDIATE`
transaction, which takes SQLite's write lock before it reads the tree head, so the
database sequences appenders and no index is handed out twice. The write lock is also
the checkpoint signer's lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.audit.records import RecordFilter
from gateway.audit.stores.base import (
    SCHEMA_VERSION,
    AppendedBatch,
    BatchBuilder,
    CheckpointSigner,
    SchemaError,
    StoredCheckpoint,
    StoredCosignature,
    StoredRecord,
    StoreError,
    TreeHead,
)

__all__ = ["SQLiteAuditStore"]

_TABLES = """
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

# Version 1: the shared tree head, the schema version, and the query indexes an auditor
# needs (time, request id, organisation, subject); version 0 had six indexes and no head.
_VERSION_1 = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tree_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size  INTEGER NOT NULL,
    frontier   BLOB NOT NULL
);
DROP INDEX IF EXISTS records_model;
DROP INDEX IF EXISTS records_reason;
CREATE INDEX IF NOT EXISTS records_time ON records (time_us);
CREATE INDEX IF NOT EXISTS records_request ON records (request_id);
CREATE INDEX IF NOT EXISTS records_subject ON records (subject);
CREATE INDEX IF NOT EXISTS records_organisation ON records (organisation);
"""

# Witness cosignatures, added within schema version 1: a store of that version that lacks
# the table gets it when a gateway opens it for writing.
_COSIGNATURES = """
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size  INTEGER NOT NULL,
    witness    TEXT NOT NULL,
    key_id     BLOB NOT NULL,
    timestamp  INTEGER NOT NULL,
    line       TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness, key_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cosignatures_witness ON cosignatures (witness, key_id, tree_size);
"""

_RECORD_COLUMNS = (
    "leaf_index, data, leaf_hash, time_us, kind, request_id, subject, organisation, model,"
    " decision, reason"
)


class SQLiteAuditStore:
    """An `AuditStore` in one SQLite file.

    `readonly` opens an existing file for reading only; otherwise the file (and its
    folder) is created if missing, with the current schema. `busy_timeout_ms` bounds the
    wait for another process's write lock.
    """

    def __init__(self, path: Path, *, readonly: bool = False, busy_timeout_ms: int = 5000):
        self.path = path
        self.url = f"sqlite:///{path}"
        self._readonly = readonly
        try:
            if readonly:
                if not path.is_file():
                    raise StoreError(f"audit store {path} does not exist")
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._connection = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._connection = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False
                )
        except sqlite3.Error as exc:
            raise StoreError(f"audit store {path} cannot be opened: {exc}") from exc
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not readonly:
                self._connection.execute("PRAGMA journal_mode = WAL")
                self._connection.execute("PRAGMA synchronous = FULL")
                if not self._tables():
                    self._create()
            self.version = self._version()
            if not readonly and self.version >= 1 and "cosignatures" not in self._tables():
                self._add_cosignature_table()
            if self.version > SCHEMA_VERSION:
                raise SchemaError(
                    f"audit store schema version {self.version} is newer than this gateway"
                    f" reads ({SCHEMA_VERSION}); upgrade the gateway",
                    self.version,
                )
        except sqlite3.Error as exc:
            self._connection.close()
            raise StoreError(f"audit store {path} cannot be opened: {exc}") from exc
        except BaseException:
            self._connection.close()
            raise

    # -- schema ---------------------------------------------------------------------

    def _tables(self) -> set[str]:
        rows = self._connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(row[0]) for row in rows}

    def _create(self) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not self._tables():  # another process may have been first
                _run_script(connection, _TABLES + _VERSION_1 + _COSIGNATURES)
                connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                connection.execute("INSERT INTO tree_head VALUES (1, 0, x'')")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _add_cosignature_table(self) -> None:
        with self._write():
            _run_script(self._connection, _COSIGNATURES)

    def _version(self) -> int:
        tables = self._tables()
        if "records" not in tables:
            raise SchemaError(f"{self.path} is not an audit store", None)
        if "schema_version" not in tables:
            return 0
        row = self._connection.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def require_current(self) -> None:
        """Raise SchemaError unless the store is at this gateway's schema version."""
        if self.version < SCHEMA_VERSION:
            raise SchemaError(
                f"audit store schema version {self.version} is older than this gateway's"
                f" ({SCHEMA_VERSION}); run `gateway audit migrate --store {self.path}`",
                self.version,
            )

    def migrate(self, head: TreeHead) -> bool:
        """Bring a version-0 store to the current version, with `head` as its tree head
        (computed by the caller from the verified records). False if nothing was to do."""
        if self.version >= SCHEMA_VERSION:
            return False
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            _run_script(connection, _VERSION_1 + _COSIGNATURES)
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            connection.execute(
                "INSERT INTO tree_head VALUES (1, ?, ?)", (head.tree_size, head.blob())
            )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreError(f"migration failed: {exc}") from exc
        self.version = SCHEMA_VERSION
        return True

    # -- writing --------------------------------------------------------------------

    def append(self, build: BatchBuilder) -> AppendedBatch:
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                batch = build(self._head())
                connection.executemany(
                    "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (batch.start + offset, data, hash_, *fields)
                        for offset, (data, hash_, fields) in enumerate(batch.rows)
                    ],
                )
                if batch.nodes:
                    connection.executemany("INSERT INTO nodes VALUES (?, ?, ?)", batch.nodes)
                connection.execute(
                    "UPDATE tree_head SET tree_size = ?, frontier = ? WHERE id = 1",
                    (batch.head.tree_size, batch.head.blob()),
                )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"audit store write failed: {exc}") from exc
        return batch

    def sign_checkpoint(
        self, sign: CheckpointSigner, *, wait: bool = False
    ) -> StoredCheckpoint | None:
        # BEGIN IMMEDIATE waits for the write lock (the signer's lock here) either way.
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                checkpoint = sign(self._head(), self._latest(), self)
                if checkpoint is not None:
                    self._insert_checkpoint(checkpoint)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"audit checkpoint write failed: {exc}") from exc
        return checkpoint

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        try:
            self._insert_checkpoint(checkpoint)
        except sqlite3.Error as exc:
            raise StoreError(f"audit checkpoint write failed: {exc}") from exc

    def _insert_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self._connection.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
            (checkpoint.tree_size, checkpoint.root_hash, checkpoint.note, checkpoint.created_us),
        )

    def backup(self, destination: Path) -> None:
        """A consistent copy of the whole file at `destination`, taken while others write."""
        try:
            target = sqlite3.connect(destination)
            try:
                self._connection.backup(target)
            finally:
                target.close()
        except sqlite3.Error as exc:
            raise StoreError(f"backup failed: {exc}") from exc

    # -- reading --------------------------------------------------------------------

    def head(self) -> TreeHead:
        try:
            return self._head()
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc

    def _head(self) -> TreeHead:
        if self.version < 1:
            self.require_current()
        row = self._connection.execute(
            "SELECT tree_size, frontier FROM tree_head WHERE id = 1"
        ).fetchone()
        if row is None:
            raise StoreError("the store has no tree head")
        return TreeHead.from_blob(int(row[0]), bytes(row[1]))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        connection = self._connection
        if connection.in_transaction:
            yield
            return
        try:
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # pin it now
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc
        try:
            yield
        finally:
            if connection.in_transaction:
                connection.execute("COMMIT")

    def iter_records(self, start: int = 0) -> Iterator[StoredRecord]:
        return self._rows(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE leaf_index >= ?"  # noqa: S608 - constant
            " ORDER BY leaf_index",
            (start,),
        )

    def _rows(self, sql: str, parameters: Any) -> Iterator[StoredRecord]:
        try:
            cursor = self._connection.execute(sql, parameters)
            while rows := cursor.fetchmany(4096):
                for row in rows:
                    yield StoredRecord(row[0], row[1], row[2], tuple(row[3:]))
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc

    def node_levels(self) -> list[int]:
        return [int(row[0]) for row in self._read("SELECT DISTINCT level FROM nodes ORDER BY 1")]

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        try:
            cursor = self._connection.execute(
                "SELECT node_index, hash FROM nodes WHERE level = ? ORDER BY node_index", (level,)
            )
            while rows := cursor.fetchmany(4096):
                for index, hash_ in rows:
                    yield int(index), bytes(hash_)
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc

    def read_record(self, index: int) -> bytes | None:
        rows = self._read("SELECT data FROM records WHERE leaf_index = ?", (index,))
        return None if not rows else bytes(rows[0][0])

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            rows = self._read(
                "SELECT leaf_hash FROM records WHERE leaf_index >= ? AND leaf_index < ?"
                " ORDER BY leaf_index",
                (start, end),
            )
        else:
            rows = self._read(
                "SELECT hash FROM nodes WHERE level = ? AND node_index >= ? AND node_index < ?"
                " ORDER BY node_index",
                (level, start, end),
            )
        return [bytes(row[0]) for row in rows]

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._read(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints ORDER BY tree_size"
        )
        return [_checkpoint(row) for row in rows]

    def checkpoints_before(self, tree_size: int | None, limit: int) -> list[StoredCheckpoint]:
        rows = self._read(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints"
            " WHERE tree_size < ? ORDER BY tree_size DESC LIMIT ?",
            (tree_size if tree_size is not None else 1 << 62, limit),
        )
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        try:
            return self._latest()
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc

    def _latest(self) -> StoredCheckpoint | None:
        row = self._connection.execute(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints"
            " ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _checkpoint(row)

    def query(
        self, record_filter: RecordFilter, after_index: int, limit: int
    ) -> list[StoredRecord]:
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
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE "  # noqa: S608 - fixed column names
            + " AND ".join(conditions)
            + " ORDER BY leaf_index LIMIT ?"
        )
        return list(self._rows(sql, parameters))

    def next_checkpoint(self, tree_size: int) -> StoredCheckpoint | None:
        rows = self._read(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints"
            " WHERE tree_size > ? ORDER BY tree_size LIMIT 1",
            (tree_size,),
        )
        return _checkpoint(rows[0]) if rows else None

    # -- cosignatures ---------------------------------------------------------------

    def add_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        try:
            with self._write():
                self._connection.executemany(
                    "INSERT OR IGNORE INTO cosignatures VALUES (?, ?, ?, ?, ?)",
                    [(c.tree_size, c.witness, c.key_id, c.timestamp, c.line) for c in cosignatures],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"audit cosignature write failed: {exc}") from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        connection = self._connection
        if connection.in_transaction:
            yield
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def cosignatures(self, tree_size: int | None = None) -> list[StoredCosignature]:
        if not self._has_cosignatures():
            return []  # a store opened read-only, written before witnesses existed
        # Two statements, so that the one for a single size uses the primary key.
        sql = "SELECT tree_size, witness, key_id, timestamp, line FROM cosignatures"
        if tree_size is None:
            rows = self._read(sql + " ORDER BY tree_size, witness, key_id")
        else:
            rows = self._read(sql + " WHERE tree_size = ? ORDER BY witness, key_id", (tree_size,))
        return [_cosignature(row) for row in rows]

    def cosigned_size(self, witness: str, key_id: bytes) -> int:
        if not self._has_cosignatures():
            return 0
        rows = self._read(
            "SELECT max(tree_size) FROM cosignatures WHERE witness = ? AND key_id = ?",
            (witness, key_id),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _has_cosignatures(self) -> bool:
        rows = self._read(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
        )
        return bool(rows)

    def _read(self, sql: str, parameters: Any = ()) -> list[Any]:
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"audit store cannot be read: {exc}") from exc

    def close(self) -> None:
        if not self._readonly:
            # The last writer out folds the WAL back into the file, so a plain copy of
            # the file after shutdown holds everything.
            # (Another connection still reading makes this fail: its own close folds it.)
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._connection.close()


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit the transaction under way.
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


def _cosignature(row: Any) -> StoredCosignature:
    return StoredCosignature(int(row[0]), str(row[1]), bytes(row[2]), int(row[3]), str(row[4]))
