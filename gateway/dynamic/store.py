"""Where objects added at run time live: the `control_objects` table of the shared store
(the audit store's database: one SQLite file, or one PostgreSQL database, for the fleet).

A row is one object as the operator posted it: a suspension, a grant, or the revocation
of a grant. A revocation stays: it is what keeps a revoked grant from being posted again
(re-opening access takes a grant with a new id, and so new approvals). Adding or removing
one is a transaction that also announces the change on the change channel, so every
process reloads after the commit. The audit log keeps the history (each change is an
`admin` record); the table holds what is in force.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from gateway.dynamic.channel import announce, ensure_schema

__all__ = ["TOPIC", "ControlStore", "ControlStoreError", "ObjectKind", "StoredObject"]

ObjectKind = Literal["suspension", "grant", "revocation"]
TOPIC = "control_objects"
# The audit store's schema lock (gateway/audit/stores/postgres.py): one schema change at a time.
_SCHEMA_LOCK = 0x6761_7465_0001

_TABLE = """
CREATE TABLE IF NOT EXISTS control_objects (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    created_by TEXT NOT NULL
)
"""


class ControlStoreError(Exception):
    """The shared store cannot be read or written; `reason` says why (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object in force: its id, kind, the JSON text as posted and who added it when."""

    id: str
    kind: ObjectKind
    body: str
    digest: str
    created_us: int
    created_by: str


_SELECT = "SELECT id, kind, body, digest, created_us, created_by FROM control_objects"
_STATEMENTS = {
    "load": _SELECT + " ORDER BY created_us, id",
    "find": _SELECT + " WHERE id = ?",
    # Two replicas adding one id at once: the second inserts nothing (and is told so).
    "insert": "INSERT INTO control_objects VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    "delete": "DELETE FROM control_objects WHERE id = ?",
    "find_kind": _SELECT + " WHERE id = ? AND kind = ?",
}


def digest_of(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


class ControlStore:
    """The `control_objects` table at a store location (a SQLite path or PostgreSQL URL).

    Synchronous, one connection, safe to call from worker threads one at a time (calls
    are serialised by a lock); the gateway calls it through `asyncio.to_thread`.
    """

    def __init__(self, location: Path | str, *, timeout: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._sqlite = isinstance(location, Path)
        # sqlite3 takes "?" placeholders as text, psycopg "%s" as bytes.
        self._sql: dict[str, Any] = (
            dict(_STATEMENTS)
            if self._sqlite
            else {name: sql.replace("?", "%s").encode() for name, sql in _STATEMENTS.items()}
        )
        try:
            if isinstance(location, Path):
                location.parent.mkdir(parents=True, exist_ok=True)
                self._connection: Any = sqlite3.connect(
                    location, isolation_level=None, timeout=timeout, check_same_thread=False
                )
                self._connection.execute(_TABLE)
                ensure_schema(self._connection)
            else:
                self._connection = psycopg.connect(
                    location, autocommit=True, connect_timeout=max(2, int(timeout))
                )
                # Replicas starting together: concurrent CREATE TABLE IF NOT EXISTS can
                # still collide in PostgreSQL's catalog, so one creates at a time.
                with self._connection.transaction():
                    self._connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    self._connection.execute(_TABLE.encode())
        except (sqlite3.Error, psycopg.Error) as exc:
            raise ControlStoreError(f"the control store cannot be opened: {_what(exc)}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            try:
                if self._sqlite:
                    self._connection.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._connection
                        self._connection.execute("COMMIT")
                    except BaseException:
                        if self._connection.in_transaction:
                            self._connection.execute("ROLLBACK")
                        raise
                else:
                    with self._connection.transaction():
                        yield self._connection
            except (sqlite3.Error, psycopg.Error) as exc:
                raise ControlStoreError(f"the control store failed: {_what(exc)}") from exc

    def load(self) -> list[StoredObject]:
        """Every object in force, oldest first."""
        with self._transaction() as connection:
            rows = connection.execute(self._sql["load"]).fetchall()
        return [_object(row) for row in rows]

    def add(self, item: StoredObject, *, unless: str | None = None) -> str | None:
        """Store `item` and announce it. None when stored; else the id that prevented it:
        `item.id` if an object with that id exists, or `unless` if that object exists."""
        with self._transaction() as connection:
            for blocking in (item.id, unless):
                if blocking is not None and self._find(connection, blocking) is not None:
                    return blocking
            if not self._insert(connection, item):
                return item.id
            announce(connection, TOPIC)
        return None

    def remove(self, object_id: str, kind: ObjectKind) -> StoredObject | None:
        """Remove the object `object_id` if it is of `kind`, and announce it; the removed
        object, or None."""
        with self._transaction() as connection:
            row = connection.execute(self._sql["find_kind"], (object_id, kind)).fetchone()
            if row is None:
                return None
            connection.execute(self._sql["delete"], (object_id,))
            announce(connection, TOPIC)
        return _object(row)

    def revoke(self, revocation: StoredObject, grant_object_id: str) -> StoredObject | None:
        """Store `revocation` and withdraw the run-time grant `grant_object_id` if there is
        one, in one transaction; the withdrawn grant, or None. KeyError, and no change, if
        `revocation` exists already."""
        with self._transaction() as connection:
            if not self._insert(connection, revocation):
                raise KeyError(revocation.id)
            row = connection.execute(self._sql["find_kind"], (grant_object_id, "grant")).fetchone()
            if row is not None:
                connection.execute(self._sql["delete"], (grant_object_id,))
            announce(connection, TOPIC)
        return None if row is None else _object(row)

    def _find(self, connection: Any, object_id: str) -> Any:
        return connection.execute(self._sql["find"], (object_id,)).fetchone()

    def _insert(self, connection: Any, item: StoredObject) -> bool:
        """Insert `item`; False if an object with its id exists (nothing inserted)."""
        cursor = connection.execute(
            self._sql["insert"],
            (item.id, item.kind, item.body, item.digest, item.created_us, item.created_by),
        )
        return bool(cursor.rowcount == 1)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _object(row: Any) -> StoredObject:
    return StoredObject(str(row[0]), row[1], str(row[2]), str(row[3]), int(row[4]), str(row[5]))


def _what(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
