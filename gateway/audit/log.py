"""The audit log: durable group-committed appends, signed checkpoints, auditor reads.

One writer task owns the tree state. Appenders queue a prepared record and wait; the
writer takes everything queued (up to `batch_max`), and in its own thread assigns the
next indexes, hashes the leaves, and writes the batch in one transaction. Only after
the commit does it swap in the new tree state and resolve each appender with its
index, so an index is never handed out for a record that is not durable, and a failed
batch consumes no index. Reads use a second, read-only connection in another thread
so they never queue behind writes.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.audit.errors import (
    AuditUnavailable,
    IntegrityError,
    NoteError,
    ProofError,
    RecordError,
)
from gateway.audit.keys import load_hmac_key, load_signer
from gateway.audit.note import Checkpoint, NoteSigner, format_checkpoint
from gateway.audit.proofs import StoredTree
from gateway.audit.records import BodyDigest, PreparedRecord, RecordFilter, prepare_record
from gateway.audit.settings import AuditSettings
from gateway.audit.store import NODE_LEVEL_STRIDE, AuditStore, SQLiteAuditStore, StoredCheckpoint
from gateway.audit.tree import CompactRange, leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.verify import verify_store

__all__ = ["AuditLog", "StoreFactory"]

T = TypeVar("T")

StoreFactory = Callable[[Path, bool], AuditStore]
"""Opens the store at a path; the flag asks for a read-only connection."""

_Pending = tuple[PreparedRecord, "asyncio.Future[int]"]


def _open_sqlite(path: Path, readonly: bool) -> AuditStore:
    return SQLiteAuditStore(path, readonly=readonly)


class AuditLog:
    """The tamper-evident audit log of one gateway.

    `clock` returns seconds since the epoch; it stamps checkpoints. Their schedule
    (`checkpoint_every_seconds`) runs on the monotonic clock, so a step of the wall
    clock neither delays nor hurries it.
    `store_factory` opens the store (SQLite by default).
    """

    def __init__(
        self,
        settings: AuditSettings,
        *,
        clock: Callable[[], float] = time.time,
        store_factory: StoreFactory = _open_sqlite,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._store_factory = store_factory
        self._pending: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_thread: ThreadPoolExecutor | None = None
        self._writer: AuditStore | None = None
        self._reader: AuditStore | None = None
        self._state = CompactRange()
        self._latest: StoredCheckpoint | None = None
        self._last_signed_at = 0.0
        self._signer: NoteSigner | None = None
        self._body_digest: BodyDigest | None = None
        self._running = False
        self._stopping = False
        self._failure: str | None = None
        self._fatal: str | None = None
        self._batch_since: float | None = None  # monotonic start of the write under way
        self._stalled = False
        self._watchdog: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, rebuild and check the tree against the latest checkpoint, start writing.

        Raises AuditUnavailable if the store cannot be opened or disagrees with its
        own signed checkpoints (the gateway must then not serve).
        """
        try:
            self._signer = load_signer(self.settings.signing_key)
            self._body_digest = BodyDigest(load_hmac_key(self.settings.hmac_key))
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            raise AuditUnavailable("audit keys cannot be loaded") from exc
        if self._signer.name != self.settings.origin:
            raise AuditUnavailable("the signing key's name is not the configured origin")
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="audit-writer")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="audit-reader")
        try:
            await self._in_writer(self._open_and_rebuild)
        except (sqlite3.Error, OSError) as exc:
            await self._shutdown_threads()
            raise AuditUnavailable(f"audit store cannot be opened: {exc}") from exc
        except IntegrityError as exc:
            await self._shutdown_threads()
            raise AuditUnavailable(f"audit store failed verification: {exc}") from exc
        self._last_signed_at = time.monotonic()
        self._wakeup = asyncio.Event()
        self._running = True
        self._stopping = False
        self._writer_task = asyncio.create_task(self._run_writer(), name="audit-writer")
        self._watchdog = asyncio.create_task(self._watch_stalls(), name="audit-watchdog")

    def _open_and_rebuild(self) -> None:
        assert self._signer is not None
        store = self._store_factory(self.settings.store, False)
        try:
            verified = verify_store(store, self._signer.verifier, check_canonical=False)
        except BaseException:
            store.close()
            raise
        self._writer = store
        self._state = verified.state
        self._latest = store.latest_checkpoint()

    async def stop(self) -> None:
        """Write everything queued, sign a final checkpoint, and close the store."""
        if not self._running:
            return
        self._stopping = True
        assert self._wakeup is not None
        assert self._writer_task is not None
        self._wakeup.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._writer_task
        self._running = False
        await self._shutdown_threads()

    async def _shutdown_threads(self) -> None:
        for executor, attribute in (
            (self._write_thread, "_writer"),
            (self._read_thread, "_reader"),
        ):
            if executor is None:
                continue
            await asyncio.get_running_loop().run_in_executor(executor, self._close, attribute)
            executor.shutdown(wait=True)
        self._write_thread = self._read_thread = None

    def _close(self, attribute: str) -> None:
        store: AuditStore | None = getattr(self, attribute)
        if store is not None:
            setattr(self, attribute, None)
            store.close()

    # -- state -----------------------------------------------------------------

    @property
    def unavailable_reason(self) -> str | None:
        """Why appends currently fail (for /readyz), or None when the log is writable."""
        if not self._running:
            return "audit log is not running"
        return self._fatal or self._failure

    @property
    def tree_size(self) -> int:
        """The number of durably committed records."""
        return self._state.size

    @property
    def body_digest(self) -> BodyDigest:
        """The keyed digest for request and response bodies (after `start`)."""
        if self._body_digest is None:
            raise AuditUnavailable("audit log is not started")
        return self._body_digest

    def latest_checkpoint(self) -> str | None:
        """The latest signed checkpoint note, or None before the first one."""
        return None if self._latest is None else self._latest.note

    # -- appending ---------------------------------------------------------------

    async def append(self, record: Mapping[str, Any]) -> int:
        """Durably append `record` and return its leaf index.

        Raises RecordError for a record that is not valid JSON input (a programming
        error) and AuditUnavailable when it cannot be made durable.
        """
        if not self._running or self._stopping:
            raise AuditUnavailable("audit log is not running")
        if self._fatal is not None:
            raise AuditUnavailable(self._fatal)
        if self._stalled:
            raise AuditUnavailable("audit store writes are stalled")
        if len(self._pending) >= self.settings.max_queued:
            raise AuditUnavailable("audit queue is full")
        prepared = prepare_record(record)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((prepared, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run_writer(self) -> None:
        assert self._wakeup is not None
        try:
            while True:
                while not self._pending and not self._stopping:
                    self._wakeup.clear()
                    timeout = self._seconds_to_checkpoint()
                    if timeout is not None and timeout <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
                    except TimeoutError:
                        break
                if self._pending:
                    count = min(len(self._pending), self.settings.batch_max)
                    batch = [self._pending.popleft() for _ in range(count)]
                    await self._commit(batch)
                if self._checkpoint_due():
                    await self._sign_checkpoint()
                if self._stopping and not self._pending:
                    break
            if self._state.size > (self._latest.tree_size if self._latest else 0):
                await self._sign_checkpoint()
        except Exception as exc:  # noqa: BLE001 - the writer's one dispatch point: fail closed
            self._fatal = f"audit writer stopped: {type(exc).__name__}"
        finally:
            while self._pending:
                _, future = self._pending.popleft()
                if not future.done():
                    future.set_exception(AuditUnavailable(self._fatal or "audit log is stopped"))

    async def _commit(self, batch: list[_Pending]) -> None:
        start = self._state.size
        state = self._state.copy()
        self._batch_since = time.monotonic()
        try:
            await self._in_writer(self._write_batch, start, [item for item, _ in batch], state)
        except (sqlite3.Error, OSError, IntegrityError) as exc:
            self._failure = f"audit store write failed: {exc}"
            if isinstance(exc, IntegrityError):
                self._fatal = self._failure
            _fail(batch, self._failure)
            return
        except BaseException:
            _fail(batch, "audit writer stopped")  # nobody may wait forever on this batch
            raise
        finally:
            self._batch_since = None
            self._stalled = False  # the write ended, one way or the other
        self._state = state
        self._failure = None
        for offset, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(start + offset)

    async def _watch_stalls(self) -> None:
        """While a write takes longer than `write_timeout_seconds`, refuse new appends and
        fail those queued behind it (none of them was written), so callers get a 503
        instead of waiting on a stalled disk."""
        while True:
            await asyncio.sleep(min(0.25, self.settings.write_timeout_seconds))
            since = self._batch_since
            if since is not None and time.monotonic() - since > self.settings.write_timeout_seconds:
                self._stalled = True
                self._failure = "audit store writes are stalled"
                queued = list(self._pending)
                self._pending.clear()
                _fail(queued, self._failure)

    def _write_batch(self, start: int, batch: list[PreparedRecord], state: CompactRange) -> None:
        store = self._writable_store(start)
        rows: list[tuple[PreparedRecord, bytes, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for offset, prepared in enumerate(batch):
            data = prepared.with_index(start + offset)
            hash_ = leaf_hash(data)
            rows.append((prepared, data, hash_))
            for level, index, node in state.append(hash_):
                if level % NODE_LEVEL_STRIDE == 0:
                    nodes.append((level, index, node))
        try:
            store.append_batch(start, rows, nodes)
        except BaseException:
            # Reopen on the next attempt: the connection may be in an unknown state.
            self._close("_writer")
            raise

    def _writable_store(self, expected_size: int) -> AuditStore:
        if self._writer is not None:
            return self._writer
        store = self._store_factory(self.settings.store, False)
        try:
            size = store.size()
        except BaseException:
            store.close()
            raise
        if size != expected_size:
            store.close()
            raise IntegrityError(f"store holds {size} records but the log expected {expected_size}")
        self._writer = store
        return store

    # -- checkpoints -------------------------------------------------------------

    def _seconds_to_checkpoint(self) -> float | None:
        if self._state.size == (self._latest.tree_size if self._latest else 0):
            return None
        due = self._last_signed_at + self.settings.checkpoint_every_seconds
        return max(0.0, due - time.monotonic())

    def _checkpoint_due(self) -> bool:
        signed = self._latest.tree_size if self._latest else 0
        if self._state.size == signed or self._fatal is not None:
            return False
        if self._state.size - signed >= self.settings.checkpoint_every_records:
            return True
        return time.monotonic() - self._last_signed_at >= self.settings.checkpoint_every_seconds

    async def _sign_checkpoint(self) -> None:
        self._last_signed_at = time.monotonic()
        try:
            self._latest = await self._in_writer(
                self._write_checkpoint, self._state.copy(), self._latest, self._clock()
            )
        except (sqlite3.Error, OSError) as exc:
            self._failure = f"audit checkpoint write failed: {exc}"
        except (ProofError, IntegrityError) as exc:
            # Never sign a tree that does not extend what was signed before.
            self._fatal = f"audit log is inconsistent with its last checkpoint: {exc}"

    def _write_checkpoint(
        self, state: CompactRange, previous: StoredCheckpoint | None, now: float
    ) -> StoredCheckpoint:
        assert self._signer is not None
        store = self._writable_store(state.size)
        root = state.root()
        if previous is not None:
            proof = StoredTree(store).consistency_proof(previous.tree_size, state.size)
            verify_consistency(previous.tree_size, state.size, proof, previous.root_hash, root)
        text = format_checkpoint(Checkpoint(self.settings.origin, state.size, root))
        checkpoint = StoredCheckpoint(state.size, root, self._signer.sign(text))
        store.add_checkpoint(checkpoint, int(now * 1_000_000))
        return checkpoint

    # -- reading -----------------------------------------------------------------

    async def query(
        self, filters: RecordFilter, after_index: int = -1, limit: int = 100
    ) -> list[tuple[int, bytes]]:
        """`(index, canonical bytes)` of matching records after `after_index`, oldest first."""
        if limit < 1:
            raise RecordError("limit must be at least 1")
        return await self._read(lambda store: store.query(filters, after_index, limit))

    async def record_with_proof(self, index: int) -> dict[str, Any]:
        """A record and its inclusion proof against the latest checkpoint, as a JSON object.

        Keys: `record` (base64 of the canonical bytes), `leaf_index`, `tree_size`,
        `proof` (base64 hashes), `checkpoint` (the signed note). The proof is checked
        against the checkpoint's root before it is returned.
        """
        latest = self._latest
        if latest is None or not 0 <= index < latest.tree_size:
            raise RecordError("record is not covered by a signed checkpoint yet")

        def build(store: AuditStore) -> tuple[bytes, list[bytes]]:
            data = store.read_record(index)
            if data is None:
                raise IntegrityError("is missing from the store", index=index)
            return data, StoredTree(store).inclusion_proof(index, latest.tree_size)

        data, proof = await self._read(build)
        verify_inclusion(index, latest.tree_size, leaf_hash(data), proof, latest.root_hash)
        return {
            "record": base64.b64encode(data).decode(),
            "leaf_index": index,
            "tree_size": latest.tree_size,
            "proof": [base64.b64encode(hash_).decode() for hash_ in proof],
            "checkpoint": latest.note,
        }

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 6962 proof that tree `second` extends tree `first` (0 < first <= second)."""
        if not 0 < first <= second <= self._state.size:
            raise RecordError("sizes must satisfy 0 < first <= second <= tree size")

        def build(store: AuditStore) -> tuple[list[bytes], bytes, bytes]:
            tree = StoredTree(store)
            return tree.consistency_proof(first, second), tree.root(first), tree.root(second)

        proof, root1, root2 = await self._read(build)
        verify_consistency(first, second, proof, root1, root2)
        return proof

    # -- threads -----------------------------------------------------------------

    async def _in_writer(self, function: Callable[..., T], *args: Any) -> T:
        assert self._write_thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._write_thread, function, *args)

    async def _read(self, function: Callable[[AuditStore], T]) -> T:
        if not self._running or self._read_thread is None:
            raise AuditUnavailable("audit log is not running")

        def call() -> T:
            if self._reader is None:
                self._reader = self._store_factory(self.settings.store, True)
            return function(self._reader)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_thread, call)
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"audit store cannot be read: {exc}") from exc


def _fail(batch: list[_Pending], reason: str) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(AuditUnavailable(reason))
