"""The audit log: durable group-committed appends, signed checkpoints, auditor reads.

One writer task per process. Appenders queue a prepared record and wait; the writer
takes everything queued (up to `batch_max`) and, in its own thread, appends it in one
store transaction that locks the shared tree head, assigns the next indexes, stores the
records and node hashes and writes the new head (`sequencing.batch_builder`). Any
number of processes append to one store this way; the database sequences them. Only
after the commit is each appender resolved with its index, so an index is never handed
out for a record that is not durable, and a failed batch consumes no index.

A write that takes longer than `write_timeout_seconds` (another process holds the
lock, the disk stalls, the database is gone) fails its appenders with
AuditUnavailable, and those queued behind it, so callers are refused within the
timeout. If such a write commits after all, the log appends a completion record for each
request it covered, saying it was answered 503 and not forwarded.

Checkpoints are signed over the committed head, one signer at a time across every
process (`AuditStore.sign_checkpoint`), when `checkpoint_every_records` records or
`checkpoint_every_seconds` have passed since the latest checkpoint, and at stop; each
checkpoint this process signs is handed to the `checkpoint_listeners` (the witness
submitter). Reads use a second connection in another thread so they never queue behind
writes.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.audit.cosignature import attach_cosignatures
from gateway.audit.errors import (
    AuditUnavailable,
    IntegrityError,
    NoteError,
    ProofError,
    RecordError,
)
from gateway.audit.keys import load_hmac_key, load_signer
from gateway.audit.note import NoteSigner
from gateway.audit.proofs import StoredTree
from gateway.audit.records import (
    BodyDigest,
    PreparedRecord,
    RecordFilter,
    format_time,
    prepare_record,
)
from gateway.audit.sequencing import (
    batch_builder,
    check_head,
    checkpoint_signer,
    open_stored_checkpoint,
)
from gateway.audit.settings import AuditSettings
from gateway.audit.stores import (
    AuditStore,
    StoredCheckpoint,
    StoredRecord,
    StoreError,
    TreeHead,
    describe_location,
    open_store,
)
from gateway.audit.tree import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.verify import check_fields, verify_store

__all__ = ["AuditLog", "AuditStatistics", "StoreFactory"]

T = TypeVar("T")

StoreFactory = Callable[[Any, bool], AuditStore]
"""Opens the store at a location; the flag asks for a read-only connection."""

_Pending = tuple[PreparedRecord, "asyncio.Future[int]"]


@dataclass(frozen=True, slots=True)
class AuditStatistics:
    """What one process's log has done and seen, read without touching the store.

    `queued`: records waiting to be written; `batches`, `records`: committed by this
    process since it started; `last_batch`: the size of its latest batch; `tree_size`:
    the tree after its latest commit; `signed_size` and `checkpoint_time` (epoch seconds,
    None before any): the newest checkpoint it has seen, at start or at its latest
    checkpoint attempt (one every `checkpoint_every_seconds` at least).
    """

    queued: int
    batches: int
    records: int
    last_batch: int
    tree_size: int
    signed_size: int
    checkpoint_time: float | None


class AuditLog:
    """The tamper-evident audit log, as one gateway process writes and reads it.

    `clock` returns seconds since the epoch; it stamps the records the log writes itself.
    `store_factory` opens the store (by default from `settings.store`, with lock waits
    bounded by `write_timeout_seconds`).
    """

    def __init__(
        self,
        settings: AuditSettings,
        *,
        clock: Callable[[], float] = time.time,
        store_factory: StoreFactory | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._store_factory = store_factory or self._open_default
        self._pending: collections.deque[_Pending] = collections.deque()
        self._in_flight: list[_Pending] = []
        self._abandoned: set[asyncio.Future[int]] = set()
        self._wakeup: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_thread: ThreadPoolExecutor | None = None
        self._writer: AuditStore | None = None
        self._reader: AuditStore | None = None
        self._size = 0
        self._signed_size = 0
        self._checkpoint_us = 0
        self._batches = 0
        self._records = 0
        self._last_batch = 0
        self._last_attempt = 0.0
        self._signer: NoteSigner | None = None
        self._body_digest: BodyDigest | None = None
        self._running = False
        self._stopping = False
        self._failure: str | None = None
        self._fatal: str | None = None
        self._batch_since: float | None = None  # monotonic start of the write under way
        self._stalled = False
        self._watchdog: asyncio.Task[None] | None = None
        self.checkpoint_listeners: list[Callable[[StoredCheckpoint], None]] = []
        """Called on the event loop with each checkpoint this process signed, once it is
        committed. A listener must return quickly and must not raise."""

    def _open_default(self, location: Any, readonly: bool) -> AuditStore:
        return open_store(
            location, readonly=readonly, write_timeout=self.settings.write_timeout_seconds
        )

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, check its head against the latest checkpoint, start writing.

        Raises AuditUnavailable if the store cannot be opened, has a schema this gateway
        does not write, or disagrees with its own signed checkpoints (the gateway must
        then not serve).
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
            head, latest = await self._in_writer(self._open_and_check)
        except (StoreError, OSError) as exc:
            await self._shutdown_threads()
            where = describe_location(self.settings.store)
            raise AuditUnavailable(f"audit store {where} cannot be opened: {exc}") from exc
        except IntegrityError as exc:
            await self._shutdown_threads()
            raise AuditUnavailable(f"audit store failed verification: {exc}") from exc
        self._size = head.tree_size
        self._signed_size = latest.tree_size if latest is not None else 0
        self._checkpoint_us = latest.created_us if latest is not None else 0
        self._last_attempt = time.monotonic()
        self._wakeup = asyncio.Event()
        self._running = True
        self._stopping = False
        self._writer_task = asyncio.create_task(self._run_writer(), name="audit-writer")
        self._watchdog = asyncio.create_task(self._watch_stalls(), name="audit-watchdog")

    def _open_and_check(self) -> tuple[TreeHead, StoredCheckpoint | None]:
        assert self._signer is not None
        store = self._store_factory(self.settings.store, False)
        try:
            store.require_current()
            try:
                head = check_head(store, self._signer.verifier)
            except IntegrityError:
                # Name the damage precisely: the full pass finds the first bad record.
                verify_store(store, self._signer.verifier, check_canonical=False)
                raise
            latest = store.latest_checkpoint()
        except BaseException:
            store.close()
            raise
        self._writer = store
        return head, latest

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
        # The reader first: SQLite folds the WAL into the file when its last writer closes.
        for executor, attribute in (
            (self._read_thread, "_reader"),
            (self._write_thread, "_writer"),
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
        """The size of the tree after this process's latest commit (others may have added)."""
        return self._size

    def statistics(self) -> AuditStatistics:
        """Counters and the unsigned tail as this process knows them (for metrics, /readyz)."""
        return AuditStatistics(
            queued=len(self._pending),
            batches=self._batches,
            records=self._records,
            last_batch=self._last_batch,
            tree_size=self._size,
            signed_size=self._signed_size,
            checkpoint_time=self._checkpoint_us / 1e6 if self._checkpoint_us else None,
        )

    @property
    def body_digest(self) -> BodyDigest:
        """The keyed digest for request and response bodies (after `start`)."""
        if self._body_digest is None:
            raise AuditUnavailable("audit log is not started")
        return self._body_digest

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
                    if timeout <= 0:
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
            if self._fatal is None:
                await self._sign_checkpoint(final=True)
        except Exception as exc:  # noqa: BLE001 - the writer's one dispatch point: fail closed
            self._fatal = f"audit writer stopped: {type(exc).__name__}"
        finally:
            while self._pending:
                _, future = self._pending.popleft()
                if not future.done():
                    future.set_exception(AuditUnavailable(self._fatal or "audit log is stopped"))

    async def _commit(self, batch: list[_Pending]) -> None:
        self._batch_since = time.monotonic()
        self._in_flight = batch
        try:
            appended = await self._in_writer(self._write_batch, [item for item, _ in batch])
        except (StoreError, OSError, IntegrityError) as exc:
            self._failure = f"audit store write failed: {_reason(exc)}"
            if isinstance(exc, IntegrityError):
                self._fatal = self._failure
            _fail(batch, self._failure)
            return
        except BaseException:
            _fail(batch, "audit writer stopped")  # nobody may wait forever on this batch
            raise
        finally:
            self._in_flight = []
            self._batch_since = None
            self._stalled = False  # the write ended, one way or the other
        self._size = max(self._size, appended.head.tree_size)
        self._failure = None
        self._batches += 1
        self._records += len(batch)
        self._last_batch = len(batch)
        abandoned: list[tuple[int, PreparedRecord]] = []
        for offset, (prepared, future) in enumerate(batch):
            if future in self._abandoned:
                self._abandoned.discard(future)
                abandoned.append((appended.start + offset, prepared))
            elif not future.done():
                future.set_result(appended.start + offset)
        for index, prepared in abandoned:
            if prepared.kind != "completion" and prepared.request_id is not None:
                self._enqueue_note(_answered_unavailable(index, prepared, self._clock()))

    def _enqueue_note(self, record: dict[str, Any]) -> None:
        """Queue a record the log writes of its own accord (nobody waits for it)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._pending.append((prepare_record(record), future))

    async def _watch_stalls(self) -> None:
        """While a write takes longer than `write_timeout_seconds`, refuse new appends and
        fail the appenders of that write and those queued behind it, so callers get a
        503 within the timeout instead of waiting on a lock, a stalled disk or a database
        that is gone."""
        timeout = self.settings.write_timeout_seconds
        while True:
            await asyncio.sleep(min(0.05, timeout / 4))
            since = self._batch_since
            if since is not None and time.monotonic() - since > timeout:
                self._stalled = True
                self._failure = "audit store writes are stalled"
                for _, future in self._in_flight:
                    if not future.done():
                        self._abandoned.add(future)
                        future.set_exception(AuditUnavailable(self._failure))
                queued = list(self._pending)
                self._pending.clear()
                _fail(queued, self._failure)

    def _write_batch(self, batch: list[PreparedRecord]) -> Any:
        store = self._writable_store()
        try:
            return store.append(batch_builder(batch))
        except BaseException:
            # Reopen on the next attempt: the connection may be in an unknown state.
            self._close("_writer")
            raise

    def _writable_store(self) -> AuditStore:
        if self._writer is None:
            store = self._store_factory(self.settings.store, False)
            try:
                store.require_current()
            except BaseException:
                store.close()
                raise
            self._writer = store
        return self._writer

    # -- checkpoints -------------------------------------------------------------

    def _seconds_to_checkpoint(self) -> float:
        due = self._last_attempt + self.settings.checkpoint_every_seconds
        return max(0.0, due - time.monotonic())

    def _checkpoint_due(self) -> bool:
        if self._fatal is not None:
            return False
        if self._size - self._signed_size >= self.settings.checkpoint_every_records:
            return True
        return time.monotonic() - self._last_attempt >= self.settings.checkpoint_every_seconds

    async def _sign_checkpoint(self, *, final: bool = False) -> None:
        """Ask the store to sign its committed head if a checkpoint is due fleet-wide (the
        latest, by whichever process, is old enough or far enough behind), or at stop."""
        assert self._signer is not None
        self._last_attempt = time.monotonic()
        every_us = int(self.settings.checkpoint_every_seconds * 1_000_000)
        every_records = self.settings.checkpoint_every_records

        def due(head: TreeHead, latest: StoredCheckpoint | None, now_us: int) -> bool:
            if final or latest is None:
                return True
            return (
                head.tree_size - latest.tree_size >= every_records
                or now_us - latest.created_us >= every_us
            )

        sign = checkpoint_signer(self._signer, self.settings.origin, due)
        try:
            latest, made = await self._in_writer(self._write_checkpoint, sign, final)
        except (StoreError, OSError) as exc:
            self._failure = f"audit checkpoint write failed: {_reason(exc)}"
            return
        except (ProofError, IntegrityError) as exc:
            # Never sign a tree that does not extend what was signed before.
            self._fatal = f"audit log is inconsistent with its last checkpoint: {exc}"
            return
        if latest is not None:
            self._signed_size = max(self._signed_size, latest.tree_size)
            self._size = max(self._size, latest.tree_size)
            self._checkpoint_us = max(self._checkpoint_us, latest.created_us)
        if made is not None:
            for listener in self.checkpoint_listeners:
                try:
                    listener(made)
                except Exception:  # noqa: BLE001, S112 - a listener must never stop the log
                    continue

    def _write_checkpoint(
        self, sign: Any, wait: bool = False
    ) -> tuple[StoredCheckpoint | None, StoredCheckpoint | None]:
        """(the latest checkpoint after this attempt, the one this process signed)."""
        store = self._writable_store()
        seen: list[StoredCheckpoint | None] = []
        signed: list[StoredCheckpoint] = []

        def observe(
            head: TreeHead, latest: StoredCheckpoint | None, reader: Any
        ) -> StoredCheckpoint | None:
            made: StoredCheckpoint | None = sign(head, latest, reader)
            seen.append(made or latest)
            if made is not None:
                signed.append(made)
            return made

        try:
            store.sign_checkpoint(observe, wait=wait)
        except BaseException:
            self._close("_writer")
            raise
        return (seen[0] if seen else None), (signed[0] if signed else None)

    # -- reading -----------------------------------------------------------------

    async def latest_checkpoint(self) -> str | None:
        """The latest signed checkpoint note in the store (by any process), with the
        witnesses' cosignature lines stored for it appended, or None."""

        def read(store: AuditStore) -> tuple[StoredCheckpoint | None, list[str]]:
            with store.snapshot():
                latest = store.latest_checkpoint()
                if latest is None:
                    return None, []
                return latest, [c.line for c in store.cosignatures(latest.tree_size)]

        latest, lines = await self._read(read)
        return None if latest is None else attach_cosignatures(latest.note, lines)

    async def checkpoint_history(
        self, before: int | None = None, limit: int = 20
    ) -> tuple[int, list[StoredCheckpoint]]:
        """The committed tree size and at most `limit` stored checkpoints smaller than
        `before` (None: the newest ones), largest first, read in one snapshot."""
        if limit < 1:
            raise RecordError("limit must be at least 1")

        def read(store: AuditStore) -> tuple[int, list[StoredCheckpoint]]:
            with store.snapshot():
                return store.head().tree_size, store.checkpoints_before(before, limit)

        return await self._read(read)

    async def query(
        self, filters: RecordFilter, after_index: int = -1, limit: int = 100
    ) -> list[tuple[int, bytes]]:
        """`(index, canonical bytes)` of matching records after `after_index`, oldest first.

        Each row's query columns are checked against its bytes: a record whose columns
        were altered raises IntegrityError naming its index rather than being misreported.
        """
        if limit < 1:
            raise RecordError("limit must be at least 1")
        rows: list[StoredRecord] = await self._read(
            lambda store: store.query(filters, after_index, limit)
        )
        for row in rows:
            check_fields(row)
        return [(row.index, bytes(row.data)) for row in rows]

    async def record_with_proof(self, index: int) -> dict[str, Any]:
        """A record and its inclusion proof against the latest checkpoint, as a JSON object.

        Keys: `record` (base64 of the canonical bytes), `leaf_index`, `tree_size`,
        `proof` (base64 hashes), `checkpoint` (the signed note). The checkpoint's
        signature and the proof are checked before it is returned.
        """
        assert self._signer is not None
        verifier = self._signer.verifier

        def build(store: AuditStore) -> tuple[StoredCheckpoint, bytes, list[bytes]]:
            latest = store.latest_checkpoint()
            if latest is None or not 0 <= index < latest.tree_size:
                raise RecordError("record is not covered by a signed checkpoint yet")
            data = store.read_record(index)
            if data is None:
                raise IntegrityError("is missing from the store", index=index)
            return latest, data, StoredTree(store).inclusion_proof(index, latest.tree_size)

        latest, data, proof = await self._read(build)
        checkpoint = open_stored_checkpoint(latest, verifier)
        verify_inclusion(index, latest.tree_size, leaf_hash(data), proof, checkpoint.root_hash)
        return {
            "record": base64.b64encode(data).decode(),
            "leaf_index": index,
            "tree_size": latest.tree_size,
            "proof": [base64.b64encode(hash_).decode() for hash_ in proof],
            "checkpoint": latest.note,
        }

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 6962 proof that tree `second` extends tree `first` (0 < first <= second)."""

        def build(store: AuditStore) -> tuple[list[bytes], bytes, bytes]:
            if not 0 < first <= second <= store.head().tree_size:
                raise RecordError("sizes must satisfy 0 < first <= second <= tree size")
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
            try:
                return function(self._reader)
            except StoreError:
                self._close("_reader")  # reconnect on the next read
                raise

        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_thread, call)
        except (StoreError, OSError) as exc:
            raise AuditUnavailable(f"audit store cannot be read: {_reason(exc)}") from exc


def _fail(batch: list[_Pending], reason: str) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(AuditUnavailable(reason))


def _consume(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: nobody else waits for a record the log wrote itself


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def _answered_unavailable(index: int, prepared: PreparedRecord, now: float) -> dict[str, Any]:
    """The completion of a request whose record committed only after the write timeout:
    its caller was answered 503 and nothing was forwarded."""
    from datetime import UTC, datetime

    return {
        "kind": "completion",
        "time": format_time(datetime.fromtimestamp(now, UTC)),
        "request_id": prepared.request_id,
        "request_index": index,
        "route": None,
        "model": prepared.model,
        "status": 503,
        "upstream_status": None,
        "error": "audit.write_timeout",
        "usage": None,
        "latency_us": None,
        "upstream_latency_us": None,
        "response_bytes": None,
        "response_digest": None,
        "stream": None,
    }
