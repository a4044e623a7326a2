"""The witness's own state: one SQLite file (WAL, synchronous=FULL).

    logs       per origin, the latest checkpoint the witness cosigned: tree size, root
               hash and the signed note as submitted
    evidence   every signed checkpoint refused as a possible fork (same size with another
               root, or a consistency proof that does not verify), with the request's old
               size and proof and what the witness held then

c2sp.org/tlog-witness ("add-checkpoint") requires the old-size check and the update of
the latest checkpoint to be one atomic step, persisted before the answer: `advance`
runs both in one `BEGIN IMMEDIATE` transaction, so even two witness processes on one
file can never roll a log back.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.witness.errors import WitnessStateError

__all__ = ["Evidence", "LatestCheckpoint", "WitnessState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin      TEXT PRIMARY KEY,
    tree_size   INTEGER NOT NULL,
    root_hash   BLOB NOT NULL,
    note        TEXT NOT NULL,
    updated_us  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id          INTEGER PRIMARY KEY,
    origin      TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    old_size    INTEGER NOT NULL,
    proof       TEXT NOT NULL,
    note        TEXT NOT NULL,
    known_size  INTEGER NOT NULL,
    known_note  TEXT
);
"""


@dataclass(frozen=True, slots=True)
class LatestCheckpoint:
    """The latest checkpoint cosigned for one origin."""

    origin: str
    tree_size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """A refused signed checkpoint kept as evidence of a possible fork.

    `proof` holds the request's consistency proof as base64 lines; `known_size` and
    `known_note` are the checkpoint the witness had cosigned when it refused.
    """

    origin: str
    received_us: int
    reason: str
    status: int
    old_size: int
    proof: str
    note: str
    known_size: int
    known_note: str | None
    id: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `advance`'s judge decided: store `accept` as the new latest, or keep
    `evidence`, or neither; `value` is handed back to the caller."""

    value: Any
    accept: LatestCheckpoint | None = None
    evidence: Evidence | None = None


Judge = Callable[[LatestCheckpoint | None], Outcome]


class WitnessState:
    """The witness's state file; safe to call from several threads (one at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._connection.execute("PRAGMA busy_timeout = 5000")
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._connection.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise WitnessStateError(f"witness state {path} cannot be opened: {exc}") from exc

    def latest(self, origin: str) -> LatestCheckpoint | None:
        """The latest checkpoint cosigned for `origin`, or None."""
        with self._lock:
            try:
                return self._latest(origin)
            except sqlite3.Error as exc:
                raise WitnessStateError(f"witness state cannot be read: {exc}") from exc

    def _latest(self, origin: str) -> LatestCheckpoint | None:
        row = self._connection.execute(
            "SELECT tree_size, root_hash, note FROM logs WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else LatestCheckpoint(origin, int(row[0]), bytes(row[1]), row[2])

    def advance(self, origin: str, judge: Judge, now_us: int) -> Any:
        """In one transaction: read the latest checkpoint of `origin`, let `judge` decide,
        store what it accepts (stamped `now_us`) or the evidence it keeps, and commit
        (durably) before returning the judge's value."""
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    outcome = judge(self._latest(origin))
                    if outcome.accept is not None:
                        accepted = outcome.accept
                        connection.execute(
                            "INSERT INTO logs VALUES (?, ?, ?, ?, ?)"
                            " ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size,"
                            " root_hash = excluded.root_hash, note = excluded.note,"
                            " updated_us = excluded.updated_us",
                            (origin, accepted.tree_size, accepted.root_hash, accepted.note, now_us),
                        )
                    if outcome.evidence is not None:
                        kept = outcome.evidence
                        connection.execute(
                            "INSERT INTO evidence (origin, received_us, reason, status, old_size,"
                            " proof, note, known_size, known_note)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                kept.origin,
                                kept.received_us,
                                kept.reason,
                                kept.status,
                                kept.old_size,
                                kept.proof,
                                kept.note,
                                kept.known_size,
                                kept.known_note,
                            ),
                        )
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise WitnessStateError(f"witness state cannot be written: {exc}") from exc
            return outcome.value

    def evidence(self, origin: str | None = None) -> list[Evidence]:
        """The evidence kept (for `origin`, or all), oldest first."""
        with self._lock:
            try:
                rows = self._connection.execute(
                    "SELECT id, origin, received_us, reason, status, old_size, proof, note,"
                    " known_size, known_note FROM evidence"
                    " WHERE ? IS NULL OR origin = ? ORDER BY id",
                    (origin, origin),
                ).fetchall()
            except sqlite3.Error as exc:
                raise WitnessStateError(f"witness state cannot be read: {exc}") from exc
        return [
            Evidence(
                origin=row[1],
                received_us=int(row[2]),
                reason=row[3],
                status=int(row[4]),
                old_size=int(row[5]),
                proof=row[6],
                note=row[7],
                known_size=int(row[8]),
                known_note=row[9],
                id=int(row[0]),
            )
            for row in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def proof_lines(proof: tuple[bytes, ...]) -> str:
    """A consistency proof as the request carried it: one base64 hash per line."""
    return "".join(base64.b64encode(hash_).decode() + "\n" for hash_ in proof)
