"""The change channel: how one gateway process tells every other "the shared control
state changed" (a suspension added, a grant revoked), within a second.

A process changes the shared state in a transaction of the shared store and, in the same
transaction, announces the change (`announce_sql`); every process listening learns of it
after the commit and reloads what changed. Two implementations, one per store:

- PostgreSQL: `NOTIFY gateway_control` inside the changing transaction (delivered on
  commit), `LISTEN` on a connection of each process;
- SQLite: a row in `control_changes` inside the changing transaction; each process polls
  `PRAGMA data_version` (which moves when another connection commits) every
  `poll_seconds` and reads the rows it has not seen.

A listener that loses its connection reconnects with a back-off and, once back, is told
`Change(topic="*")`: something may have changed while it was away, reload everything.
Topics are short names (`suspensions`, `grants`, ...); payloads stay in the store, so a
lost or duplicated announcement costs a reload, never a wrong state.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

__all__ = [
    "CHANNEL",
    "Change",
    "ChangeChannel",
    "PostgresChannel",
    "SQLiteChannel",
    "announce",
    "ensure_schema",
    "open_channel",
]

CHANNEL = "gateway_control"
RESYNC = "*"

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS control_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT NOT NULL,
    sent_us INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One announcement: which part of the state changed, and when it was sent (epoch
    seconds, for measuring propagation). `topic` "*" means reload everything."""

    topic: str
    sent_at: float


Listener = Callable[[Change], None]


class ChangeChannel(Protocol):
    async def start(self, listener: Listener) -> None:
        """Start listening; `listener` is called on the event loop for every change."""

    async def stop(self) -> None:
        """Stop listening and close the channel's connection."""


def announce(connection: Any, topic: str, now: float | None = None) -> None:
    """Announce `topic` inside the caller's open transaction on `connection` (a sqlite3
    or psycopg connection to the shared store); it is delivered when that commits."""
    sent_us = int((time.time() if now is None else now) * 1_000_000)
    if isinstance(connection, sqlite3.Connection):
        connection.execute(
            "INSERT INTO control_changes (topic, sent_us) VALUES (?, ?)", (topic, sent_us)
        )
    else:
        connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{topic} {sent_us}"))


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the SQLite channel's table if it is missing."""
    connection.execute(_SQLITE_SCHEMA)


def _parse(payload: str) -> Change:
    topic, _, sent = payload.partition(" ")
    try:
        sent_at = int(sent) / 1_000_000
    except ValueError:
        sent_at = time.time()
    return Change(topic or RESYNC, sent_at)


class _Listening:
    """The loop both channels share: connect and listen; on failure wait, reconnect, and
    tell the listener to reload everything (announcements may have been missed)."""

    def __init__(self, name: str, logger: Any) -> None:
        self._name = name
        self._logger = logger
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(
        self, listen: Callable[[Callable[[], None]], Awaitable[None]], listener: Listener
    ) -> None:
        """Run `listen(on_open)` until stopped; it calls `on_open` once it is listening."""
        reconnecting = False

        def on_open() -> None:
            self.connected.set()
            if reconnecting:
                listener(Change(RESYNC, time.time()))

        async def run() -> None:
            nonlocal reconnecting
            backoff = 0.1
            while True:
                try:
                    await listen(on_open)
                    return
                except Exception as exc:  # noqa: BLE001 - any failure: reconnect and resync
                    self.connected.clear()
                    if self._logger is not None:
                        self._logger.warning(
                            "control.channel_lost", channel=self._name, error=type(exc).__name__
                        )
                    reconnecting = True
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)

        self._task = asyncio.get_running_loop().create_task(run(), name=f"channel-{self._name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PostgresChannel:
    """LISTEN on `url`'s database for changes announced with NOTIFY."""

    def __init__(self, url: str, *, logger: Any = None) -> None:
        self._url = url
        self._listening = _Listening("postgresql", logger)

    @property
    def connected(self) -> asyncio.Event:
        """Set while the channel is listening."""
        return self._listening.connected

    async def start(self, listener: Listener) -> None:
        async def listen(on_open: Callable[[], None]) -> None:
            async with await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=5
            ) as connection:
                await connection.execute(f"LISTEN {CHANNEL}".encode())
                on_open()
                async for notify in connection.notifies():
                    listener(_parse(notify.payload))

        self._listening.start(listen, listener)

    async def stop(self) -> None:
        await self._listening.stop()


class SQLiteChannel:
    """Polls a SQLite file for changes announced in its `control_changes` table."""

    def __init__(self, path: Path, *, poll_seconds: float = 0.1, logger: Any = None) -> None:
        self._path = path
        self._poll = poll_seconds
        self._listening = _Listening("sqlite", logger)

    @property
    def connected(self) -> asyncio.Event:
        """Set while the channel is listening."""
        return self._listening.connected

    async def start(self, listener: Listener) -> None:
        async def listen(on_open: Callable[[], None]) -> None:
            # SQLite calls run in a thread: a lock held by a writer must not stall the loop.
            reader = _SQLiteReader(self._path)
            try:
                await asyncio.to_thread(reader.open)
                on_open()
                while True:
                    await asyncio.sleep(self._poll)
                    for change in await asyncio.to_thread(reader.new_changes):
                        listener(change)
            finally:
                await asyncio.to_thread(reader.close)

        self._listening.start(listen, listener)

    async def stop(self) -> None:
        await self._listening.stop()


class _SQLiteReader:
    """The SQLite channel's connection: what changed since it last looked."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._seen = 0
        self._version: object = None
        # A cancelled poll leaves its query running in a worker thread while `close`
        # runs in another: closing a SQLite connection in use crashes the process.
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            connection = sqlite3.connect(
                self._path, isolation_level=None, timeout=1.0, check_same_thread=False
            )
            self._connection = connection
            ensure_schema(connection)
            row = connection.execute("SELECT max(seq) FROM control_changes").fetchone()
            self._seen = int(row[0] or 0)
            self._version = connection.execute("PRAGMA data_version").fetchone()[0]

    def new_changes(self) -> list[Change]:
        with self._lock:
            return self._new_changes()

    def _new_changes(self) -> list[Change]:
        if self._connection is None:
            return []
        version = self._connection.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return []
        self._version = version
        rows = self._connection.execute(
            "SELECT seq, topic, sent_us FROM control_changes WHERE seq > ? ORDER BY seq",
            (self._seen,),
        ).fetchall()
        if rows:
            self._seen = int(rows[-1][0])
        return [Change(str(topic), int(sent_us) / 1_000_000) for _, topic, sent_us in rows]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def open_channel(location: Path | str, *, logger: Any = None) -> SQLiteChannel | PostgresChannel:
    """The channel for a store location (a SQLite path or a PostgreSQL URL)."""
    if isinstance(location, Path):
        return SQLiteChannel(location, logger=logger)
    return PostgresChannel(location, logger=logger)
