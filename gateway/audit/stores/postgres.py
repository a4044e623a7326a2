"""The fleet store: one PostgreSQL database that every gateway process appends to.

Each batch is one transaction that takes the row lock on the single tree-head row
(`SELECT ... FOR UPDATE`), reads the head, writes the records and node hashes and the
new head, and commits with `synchronous_commit = on` (Tessera's MySQL storage is the
pattern). A writer that dies mid-transaction leaves nothing. One process at a time signs
a checkpoint, under a transaction-level advisory lock.

Driver: psycopg 3 (chosen by measurement over asyncpg; docs/BENCHMARKS.md). The store is
synchronous and used from the audit log's writer and reader threads, one connection
each. The URL is libpq's; passwords come from PGPASSWORD or a passfile, never from the
settings file, and never appear in a message.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

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

__all__ = ["PostgresAuditStore"]

# Advisory lock keys (any constants; they only need to differ from each other).
_SCHEMA_LOCK = 0x6761_7465_0001
_SIGNER_LOCK = 0x6761_7465_0002

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tree_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size BIGINT NOT NULL,
    frontier  BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    leaf_index   BIGINT PRIMARY KEY,
    data         BYTEA NOT NULL,
    leaf_hash    BYTEA NOT NULL,
    time_us      BIGINT NOT NULL,
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
CREATE TABLE IF NOT EXISTS nodes (
    level      INTEGER NOT NULL,
    node_index BIGINT NOT NULL,
    hash       BYTEA NOT NULL,
    PRIMARY KEY (level, node_index)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size  BIGINT PRIMARY KEY,
    root_hash  BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
"""

# Witness cosignatures, added within schema version 1: a store of that version that lacks
# the table gets it when a gateway opens it for writing.
_COSIGNATURES = """
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size  BIGINT NOT NULL,
    witness    TEXT NOT NULL,
    key_id     BYTEA NOT NULL,
    timestamp  BIGINT NOT NULL,
    line       TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness, key_id)
);
CREATE INDEX IF NOT EXISTS cosignatures_witness ON cosignatures (witness, key_id, tree_size);
"""

_RECORD_COLUMNS = (
    "leaf_index, data, leaf_hash, time_us, kind, request_id, subject, organisation, model,"
    " decision, reason"
)
_COPY_RECORDS = f"COPY records ({_RECORD_COLUMNS}) FROM STDIN".encode()
_PAGE = 4096


class PostgresAuditStore:
    """An `AuditStore` in a PostgreSQL database (the tables of the URL's search path).

    A writable store creates the schema if the database has none. `write_timeout`
    (seconds) bounds lock waits and statements, so a stuck database fails the write.
    """

    def __init__(self, url: str, *, readonly: bool = False, write_timeout: float = 5.0):
        from gateway.audit.stores import describe_location

        self.url = describe_location(url)
        self._readonly = readonly
        timeout_ms = max(1, int(write_timeout * 1000))
        try:
            self._connection = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(2, math.ceil(write_timeout)),
                application_name="model-access-gateway",
            )
        except psycopg.Error as exc:
            raise StoreError(f"audit store {self.url} cannot be reached: {_what(exc)}") from exc
        try:
            self._connection.execute(f"SET lock_timeout = {timeout_ms}")
            self._connection.execute(f"SET statement_timeout = {max(timeout_ms, 30_000)}")
            if readonly:
                self._connection.execute("SET default_transaction_read_only = on")
            else:
                self._create()
            self.version = self._version()
            if self.version > SCHEMA_VERSION:
                raise SchemaError(
                    f"audit store schema version {self.version} is newer than this gateway"
                    f" reads ({SCHEMA_VERSION}); upgrade the gateway",
                    self.version,
                )
        except psycopg.Error as exc:
            self._connection.close()
            raise StoreError(f"audit store {self.url} cannot be opened: {_what(exc)}") from exc
        except BaseException:
            self._connection.close()
            raise

    def _create(self) -> None:
        with self._connection.transaction():
            self._connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            exists = self._connection.execute(
                "SELECT to_regclass('tree_head') IS NOT NULL,"
                " to_regclass('cosignatures') IS NOT NULL"
            ).fetchone()
            if exists is not None and exists[0]:
                if not exists[1]:
                    self._run(_COSIGNATURES)
                return
            self._run(_SCHEMA + _COSIGNATURES)
            self._connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            self._connection.execute("INSERT INTO tree_head VALUES (1, 0, ''::bytea)")

    def _run(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._connection.execute(statement.encode())

    def _version(self) -> int:
        row = self._connection.execute(
            "SELECT to_regclass('schema_version') IS NOT NULL, to_regclass('records') IS NOT NULL"
        ).fetchone()
        if row is None or not row[1]:
            raise SchemaError(f"{self.url} holds no audit store", None)
        if not row[0]:
            return 0
        found = self._connection.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def require_current(self) -> None:
        if self.version < SCHEMA_VERSION:
            raise SchemaError(
                f"audit store schema version {self.version} is older than this gateway's"
                f" ({SCHEMA_VERSION}); run `gateway audit migrate`",
                self.version,
            )

    # -- writing --------------------------------------------------------------------

    def append(self, build: BatchBuilder) -> AppendedBatch:
        connection = self._connection
        try:
            with connection.transaction(), connection.cursor() as cursor:
                row = cursor.execute(
                    "SELECT tree_size, frontier FROM tree_head WHERE id = 1 FOR UPDATE"
                ).fetchone()
                if row is None:
                    raise StoreError("the store has no tree head")
                batch = build(TreeHead.from_blob(int(row[0]), bytes(row[1])))
                with cursor.copy(_COPY_RECORDS) as copy:
                    for offset, (data, hash_, fields) in enumerate(batch.rows):
                        copy.write_row((batch.start + offset, data, hash_, *fields))
                if batch.nodes:
                    with cursor.copy("COPY nodes (level, node_index, hash) FROM STDIN") as copy:
                        for node in batch.nodes:
                            copy.write_row(node)
                cursor.execute(
                    "UPDATE tree_head SET tree_size = %s, frontier = %s WHERE id = 1",
                    (batch.head.tree_size, batch.head.blob()),
                )
        except psycopg.Error as exc:
            raise StoreError(f"audit store write failed: {_what(exc)}") from exc
        return batch

    def sign_checkpoint(
        self, sign: CheckpointSigner, *, wait: bool = False
    ) -> StoredCheckpoint | None:
        connection = self._connection
        try:
            with connection.transaction():
                if wait:
                    # A process stopping must sign over its own last records, not leave
                    # them to a signer that read the head before they were committed.
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SIGNER_LOCK,))
                else:
                    locked = connection.execute(
                        "SELECT pg_try_advisory_xact_lock(%s)", (_SIGNER_LOCK,)
                    ).fetchone()
                    if locked is None or not locked[0]:
                        return None  # another process is signing right now
                checkpoint = sign(self._head(), self._latest(), self)
                if checkpoint is not None:
                    self._insert_checkpoint(checkpoint)
        except psycopg.Error as exc:
            raise StoreError(f"audit checkpoint write failed: {_what(exc)}") from exc
        return checkpoint

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        try:
            self._insert_checkpoint(checkpoint)
        except psycopg.Error as exc:
            raise StoreError(f"audit checkpoint write failed: {_what(exc)}") from exc

    def _insert_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self._connection.execute(
            "INSERT INTO checkpoints VALUES (%s, %s, %s, %s)",
            (checkpoint.tree_size, checkpoint.root_hash, checkpoint.note, checkpoint.created_us),
        )

    # -- reading --------------------------------------------------------------------

    def head(self) -> TreeHead:
        try:
            return self._head()
        except psycopg.Error as exc:
            raise StoreError(f"audit store cannot be read: {_what(exc)}") from exc

    def _head(self) -> TreeHead:
        row = self._connection.execute(
            "SELECT tree_size, frontier FROM tree_head WHERE id = 1"
        ).fetchone()
        if row is None:
            raise StoreError("the store has no tree head")
        return TreeHead.from_blob(int(row[0]), bytes(row[1]))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        connection = self._connection
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield  # already inside one
            return
        try:
            with connection.transaction():
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield
        except psycopg.Error as exc:
            raise StoreError(f"audit store cannot be read: {_what(exc)}") from exc

    def iter_records(self, start: int = 0) -> Iterator[StoredRecord]:
        position = start
        while True:
            rows = self._read(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE leaf_index >= %s"  # noqa: S608
                " ORDER BY leaf_index LIMIT %s",
                (position, _PAGE),
            )
            for row in rows:
                yield _record(row)
            if len(rows) < _PAGE:
                return
            position = int(rows[-1][0]) + 1

    def node_levels(self) -> list[int]:
        return [int(row[0]) for row in self._read("SELECT DISTINCT level FROM nodes ORDER BY 1")]

    def iter_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        position = 0
        while True:
            rows = self._read(
                "SELECT node_index, hash FROM nodes WHERE level = %s AND node_index >= %s"
                " ORDER BY node_index LIMIT %s",
                (level, position, _PAGE),
            )
            for index, hash_ in rows:
                yield int(index), bytes(hash_)
            if len(rows) < _PAGE:
                return
            position = int(rows[-1][0]) + 1

    def read_record(self, index: int) -> bytes | None:
        rows = self._read("SELECT data FROM records WHERE leaf_index = %s", (index,))
        return None if not rows else bytes(rows[0][0])

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        if level == 0:
            rows = self._read(
                "SELECT leaf_hash FROM records WHERE leaf_index >= %s AND leaf_index < %s"
                " ORDER BY leaf_index",
                (start, end),
            )
        else:
            rows = self._read(
                "SELECT hash FROM nodes WHERE level = %s AND node_index >= %s"
                " AND node_index < %s ORDER BY node_index",
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
            " WHERE tree_size < %s ORDER BY tree_size DESC LIMIT %s",
            (tree_size if tree_size is not None else 1 << 62, limit),
        )
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        try:
            return self._latest()
        except psycopg.Error as exc:
            raise StoreError(f"audit store cannot be read: {_what(exc)}") from exc

    def _latest(self) -> StoredCheckpoint | None:
        row = self._connection.execute(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints"
            " ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _checkpoint(row)

    def query(
        self, record_filter: RecordFilter, after_index: int, limit: int
    ) -> list[StoredRecord]:
        conditions = ["leaf_index > %s"]
        parameters: list[object] = [after_index]
        since, until = record_filter.bounds()
        if since is not None:
            conditions.append("time_us >= %s")
            parameters.append(since)
        if until is not None:
            conditions.append("time_us <= %s")
            parameters.append(until)
        for column, value in record_filter.equalities().items():
            # Column names come from RecordFilter's fixed field list, never from input.
            conditions.append(f"{column} = %s")
            parameters.append(value)
        parameters.append(limit)
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE "  # noqa: S608 - fixed column names
            + " AND ".join(conditions)
            + " ORDER BY leaf_index LIMIT %s"
        )
        return [_record(row) for row in self._read(sql, parameters)]

    def next_checkpoint(self, tree_size: int) -> StoredCheckpoint | None:
        rows = self._read(
            "SELECT tree_size, root_hash, note, created_us FROM checkpoints"
            " WHERE tree_size > %s ORDER BY tree_size LIMIT 1",
            (tree_size,),
        )
        return _checkpoint(rows[0]) if rows else None

    # -- cosignatures ---------------------------------------------------------------

    def add_cosignatures(self, cosignatures: Sequence[StoredCosignature]) -> None:
        try:
            with self._connection.transaction(), self._connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO cosignatures VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(c.tree_size, c.witness, c.key_id, c.timestamp, c.line) for c in cosignatures],
                )
        except psycopg.Error as exc:
            raise StoreError(f"audit cosignature write failed: {_what(exc)}") from exc

    def cosignatures(self, tree_size: int | None = None) -> list[StoredCosignature]:
        if not self._has_cosignatures():
            return []  # a store opened read-only, written before witnesses existed
        sql = "SELECT tree_size, witness, key_id, timestamp, line FROM cosignatures"
        if tree_size is None:
            rows = self._read(sql + " ORDER BY tree_size, witness, key_id")
        else:
            rows = self._read(sql + " WHERE tree_size = %s ORDER BY witness, key_id", (tree_size,))
        return [
            StoredCosignature(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), str(r[4])) for r in rows
        ]

    def cosigned_size(self, witness: str, key_id: bytes) -> int:
        if not self._has_cosignatures():
            return 0
        rows = self._read(
            "SELECT max(tree_size) FROM cosignatures WHERE witness = %s AND key_id = %s",
            (witness, key_id),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _has_cosignatures(self) -> bool:
        rows = self._read("SELECT to_regclass('cosignatures') IS NOT NULL")
        return bool(rows and rows[0][0])

    def _read(self, sql: str, parameters: Any = ()) -> list[Any]:
        try:
            return self._connection.execute(sql.encode(), parameters).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"audit store cannot be read: {_what(exc)}") from exc

    def close(self) -> None:
        self._connection.close()


def _record(row: Any) -> StoredRecord:
    return StoredRecord(int(row[0]), bytes(row[1]), bytes(row[2]), tuple(row[3:]))


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


def _what(exc: psycopg.Error) -> str:
    """A database error in one line, without the connection string."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
