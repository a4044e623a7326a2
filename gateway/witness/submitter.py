"""Submitting the log's checkpoints to its witnesses (c2sp.org/tlog-witness), in the
background, never in the way of serving.

The process that signs a checkpoint submits it: the audit log hands each checkpoint it
signed to `checkpoint_signed`, and a background task sends the store's latest
checkpoint to every configured witness that has not cosigned it, with the RFC 6962
consistency proof from the size that witness cosigned last (as the store's
cosignatures say, or as the witness said in a 409). A witness's cosignature lines are
verified with its configured key and stored with the checkpoint. When a newer
checkpoint signed by another process appears, submitting it is that process's job.
At start a process takes up the latest checkpoint if a witness lacks it, so a witness
that was down catches up after any restart; at stop it makes one last attempt.

A witness that fails (unreachable, timeout, any answer but 200) is retried with
exponential backoff, with jitter, from `witness_retry_seconds` up to
`witness_retry_max_seconds`. How far each witness is behind, in records and seconds,
is kept in `lag()` and logged with every failure; it never makes the gateway unready.
All store access runs in the submitter's own thread and connection; nothing here is
awaited by a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from gateway.audit import AuditError, AuditSettings, NoteError
from gateway.audit.cosignature import note_parts
from gateway.audit.proofs import StoredTree
from gateway.audit.settings import WitnessSettings
from gateway.audit.stores import AuditStore, StoredCheckpoint, StoredCosignature, open_store
from gateway.audit.tree import verify_consistency
from gateway.logs import get_logger
from gateway.witness.errors import ProtocolError, SubmissionFailed
from gateway.witness.protocol import SIZE_CONTENT_TYPE, format_add_checkpoint, parse_size

__all__ = ["WitnessLag", "WitnessSubmitter"]

T = TypeVar("T")

_MAX_RESPONSE_BYTES = 64 * 1024
_CONFLICT_ROUNDS = 3  # a 409 names the witness's size; resubmit from it, a few times at most


@dataclass(frozen=True, slots=True)
class WitnessLag:
    """How far one witness is behind the log's latest checkpoint.

    `cosigned_size`: the largest of this log's checkpoints the witness has cosigned (a
    cosignature is stored for it); `records`: the latest checkpoint's size minus that;
    `seconds`: how long the oldest checkpoint it has not cosigned has waited (0 when
    caught up); `failures`: consecutive failed submissions; `last_error`: why the last
    one failed.
    """

    witness: str
    cosigned_size: int
    records: int
    seconds: float
    failures: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        """For /readyz: the lag without the error text (that names hosts and quotes the
        witness; the log line carries it)."""
        return {
            "witness": self.witness,
            "cosigned_size": self.cosigned_size,
            "behind_records": self.records,
            "behind_seconds": round(self.seconds, 3),
            "failures": self.failures,
        }


class _Tracked:
    """What the submitter knows about one witness."""

    def __init__(self, settings: WitnessSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.cosigned = 0  # the largest size the store holds a cosignature of
        self.reported: int | None = None  # the size the witness named in its last 409
        self.behind_since_us: int | None = None
        self.failures = 0
        self.next_attempt = 0.0  # monotonic
        self.last_error: str | None = None

    @property
    def old_size(self) -> int:
        """The size to submit from: the witness's latest cosigned size as best known (its
        409 may name a size whose cosignature this store lacks, or another root)."""
        return self.reported if self.reported is not None else self.cosigned


class WitnessSubmitter:
    """Submits checkpoints to the witnesses in `settings.witnesses`.

    `transport`, if given, makes each witness's HTTP transport (tests use it to reach a
    witness app in process); `store_factory` opens the store (default: from
    `settings.store`). `wall_clock` must be the clock checkpoints are stamped with.
    """

    def __init__(
        self,
        settings: AuditSettings,
        *,
        transport: Callable[[WitnessSettings], httpx.AsyncBaseTransport] | None = None,
        store_factory: Callable[[], AuditStore] | None = None,
        wall_clock: Callable[[], float] = time.time,
        logger: Any = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._store_factory = store_factory or (
            lambda: open_store(settings.store, write_timeout=settings.write_timeout_seconds)
        )
        self._wall_clock = wall_clock
        self.logger = logger or get_logger()
        self._tracked: list[_Tracked] = []
        self._latest: StoredCheckpoint | None = None
        self._mine = 0  # the largest checkpoint this process is responsible for submitting
        self._store: AuditStore | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task (nothing to do without witnesses)."""
        if not self.settings.witnesses:
            return
        self._tracked = [_Tracked(w, self._client(w)) for w in self.settings.witnesses]
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="witness-submitter")
        self._wakeup = asyncio.Event()
        self._wakeup.set()  # look at the store at once: catch up what is not cosigned yet
        self._task = asyncio.create_task(self._run(), name="witness-submitter")

    def _client(self, witness: WitnessSettings) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.settings.witness_timeout_seconds)
        if self._transport is not None:
            return httpx.AsyncClient(transport=self._transport(witness), timeout=timeout)
        verify: ssl.SSLContext | bool = True
        if witness.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(witness.ca_bundle))
        return httpx.AsyncClient(verify=verify, timeout=timeout, follow_redirects=False)

    async def stop(self) -> None:
        """Stop submitting, after one last attempt (bounded by `witness_timeout_seconds`)
        to have the latest checkpoint cosigned: the audit log signs a final checkpoint
        when it stops, so stop the log first. What is still not cosigned is taken up at
        the next start."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            async with asyncio.timeout(self.settings.witness_timeout_seconds):
                await self._round(take_up=False, final=True)
        except Exception as exc:  # noqa: BLE001 - stopping must finish whatever happened
            self.logger.warning("witness.final_round_failed", error=type(exc).__name__)
        for tracked in self._tracked:
            await tracked.client.aclose()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_store)
            self._thread.shutdown(wait=True)
            self._thread = None

    def checkpoint_signed(self, checkpoint: StoredCheckpoint) -> None:
        """The audit log's listener: this process signed `checkpoint`; submit it."""
        self._mine = max(self._mine, checkpoint.tree_size)
        if self._wakeup is not None:
            self._wakeup.set()

    # -- what is observable ------------------------------------------------------

    def lag(self) -> dict[str, WitnessLag]:
        """How far each witness is behind, by witness name (for metrics and /readyz)."""
        latest = self._latest.tree_size if self._latest is not None else 0
        now_us = int(self._wall_clock() * 1_000_000)
        result = {}
        for tracked in self._tracked:
            behind = max(0, latest - tracked.cosigned)
            since = tracked.behind_since_us
            seconds = max(0.0, (now_us - since) / 1e6) if behind and since is not None else 0.0
            result[tracked.settings.name] = WitnessLag(
                tracked.settings.name,
                tracked.cosigned,
                behind,
                seconds,
                tracked.failures,
                tracked.last_error,
            )
        return result

    # -- the background task ----------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        first = True
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._seconds_to_next())
            self._wakeup.clear()
            try:
                await self._round(take_up=first)
                first = False
            except Exception as exc:  # noqa: BLE001 - the task must outlive any one failure
                self.logger.error("witness.submitter_error", error=type(exc).__name__)
                await asyncio.sleep(self.settings.witness_retry_seconds)

    def _seconds_to_next(self) -> float:
        """Until the earliest retry due, or a periodic look at the store (the lag of
        witnesses other processes submit to)."""
        wait = max(self.settings.checkpoint_every_seconds, 1.0)
        now = time.monotonic()
        latest = self._latest.tree_size if self._latest is not None else 0
        for tracked in self._tracked:
            if tracked.cosigned < latest and latest <= self._mine:
                wait = min(wait, max(0.0, tracked.next_attempt - now))
        return wait

    async def _round(self, *, take_up: bool, final: bool = False) -> None:
        latest, sizes, since = await self._in_store(self._look)
        self._latest = latest
        if latest is None:
            return
        if take_up:
            self._mine = max(self._mine, latest.tree_size)
        for tracked in self._tracked:
            tracked.cosigned = sizes[tracked.settings.name]
            if tracked.reported is not None and tracked.reported <= tracked.cosigned:
                tracked.reported = None
            behind = tracked.cosigned < latest.tree_size
            if not behind:
                tracked.behind_since_us = None
            elif tracked.behind_since_us is None:
                tracked.behind_since_us = since.get(tracked.settings.name, latest.created_us)
        if latest.tree_size > self._mine:
            return  # signed by another process, which submits it
        now = time.monotonic()
        due = [
            t
            for t in self._tracked
            if t.cosigned < latest.tree_size and (final or now >= t.next_attempt)
        ]
        await asyncio.gather(*(self._submit(tracked, latest) for tracked in due))

    def _look(
        self, store: AuditStore
    ) -> tuple[StoredCheckpoint | None, dict[str, int], dict[str, int]]:
        """The latest checkpoint, each witness's cosigned size in the store, and for each
        witness behind, when the first checkpoint it lacks was signed."""
        with store.snapshot():
            latest = store.latest_checkpoint()
            sizes = {
                t.settings.name: store.cosigned_size(t.settings.name, t.settings.key.key_id)
                for t in self._tracked
            }
            since: dict[str, int] = {}
            if latest is not None:
                for name, size in sizes.items():
                    if size < latest.tree_size:
                        following = store.next_checkpoint(size)
                        since[name] = (following or latest).created_us
        return latest, sizes, since

    async def _submit(self, tracked: _Tracked, latest: StoredCheckpoint) -> None:
        witness = tracked.settings
        try:
            lines = await self._exchange(tracked, latest)
        except SubmissionFailed as exc:
            self._failed(tracked, exc.reason, conflict=exc.conflict)
            return
        except httpx.HTTPError as exc:
            self._failed(tracked, f"the witness is unreachable ({type(exc).__name__})")
            return
        except (AuditError, OSError) as exc:
            self._failed(tracked, f"the audit store failed ({type(exc).__name__})")
            return
        before = tracked.old_size
        tracked.cosigned = latest.tree_size
        tracked.reported = None
        tracked.behind_since_us = None
        tracked.failures = 0
        tracked.next_attempt = 0.0
        tracked.last_error = None
        self.logger.info(
            "witness.cosigned",
            witness=witness.name,
            tree_size=latest.tree_size,
            old_size=before,
            cosignatures=len(lines),
        )

    async def _exchange(self, tracked: _Tracked, latest: StoredCheckpoint) -> list[str]:
        """One submission, resubmitting from the size a 409 names; the verified
        cosignature lines once they are stored."""
        witness = tracked.settings
        old = tracked.old_size
        for _ in range(_CONFLICT_ROUNDS):
            if old > latest.tree_size:
                raise SubmissionFailed(
                    f"the witness cosigned size {old}, beyond the log's latest checkpoint"
                    f" ({latest.tree_size}): the log may have been cut off or forked",
                    size=old,
                    conflict=True,
                )
            proof = await self._in_store(self._proof, old, latest)
            request = tracked.client.build_request(
                "POST",
                witness.add_checkpoint_url,
                content=format_add_checkpoint(old, proof, latest.note),
            )
            response = await tracked.client.send(request, stream=True)
            try:
                body = await _bounded(response)
            finally:
                await response.aclose()
            if body is None:
                raise SubmissionFailed(
                    "the witness's answer is too large", status=response.status_code
                )
            if response.status_code == 200:
                lines = self._cosignatures(witness, latest, body)
                cosignatures = [
                    StoredCosignature(latest.tree_size, witness.name, witness.key.key_id, ts, line)
                    for line, ts in lines
                ]
                await self._in_store(_store_cosignatures, cosignatures)
                return [line for line, _ in lines]
            if response.status_code == 409:
                size = _conflict_size(response, body)
                if size == old:
                    raise SubmissionFailed(
                        f"the witness holds a different checkpoint of size {size}: the log"
                        " may have been forked",
                        status=409,
                        size=size,
                        conflict=True,
                    )
                tracked.reported = size
                old = size
                continue
            if response.status_code == 422:
                raise SubmissionFailed(
                    f"the witness refused the consistency proof from size {old} (422:"
                    f" {_excerpt(body)}): the log may have been forked",
                    status=422,
                    conflict=True,
                )
            raise SubmissionFailed(
                f"the witness answered {response.status_code}: {_excerpt(body)}",
                status=response.status_code,
            )
        raise SubmissionFailed("the witness's size kept changing", status=409)

    def _proof(self, store: AuditStore, old: int, latest: StoredCheckpoint) -> list[bytes]:
        """The consistency proof from `old` to the checkpoint, checked before it is sent."""
        if old == 0 or old == latest.tree_size:
            return []
        with store.snapshot():
            tree = StoredTree(store)
            proof = tree.consistency_proof(old, latest.tree_size)
            verify_consistency(old, latest.tree_size, proof, tree.root(old), latest.root_hash)
        return proof

    def _cosignatures(
        self, witness: WitnessSettings, latest: StoredCheckpoint, body: bytes
    ) -> list[tuple[str, int]]:
        """The response's cosignature lines by `witness`'s key, each verified; lines by
        other keys are ignored (c2sp.org/tlog-witness, "add-checkpoint")."""
        text, _ = note_parts(latest.note)
        try:
            answer = body.decode("utf-8")
            if not answer.endswith("\n"):
                raise SubmissionFailed("the witness's cosignature lines do not end in a newline")
            found = []
            for line in answer.splitlines(keepends=True):
                if witness.key.matches(line):
                    cosignature = witness.key.verify(text, line)
                    found.append((line, cosignature.timestamp))
        except (UnicodeDecodeError, NoteError) as exc:
            reason = exc.reason if isinstance(exc, NoteError) else "it is not UTF-8"
            raise SubmissionFailed(f"the witness's answer does not verify: {reason}") from exc
        if not found:
            raise SubmissionFailed("the witness's answer holds no cosignature by its key")
        return found

    def _failed(self, tracked: _Tracked, reason: str, *, conflict: bool = False) -> None:
        settings = self.settings
        tracked.failures += 1
        delay = min(
            settings.witness_retry_max_seconds,
            settings.witness_retry_seconds * 2 ** min(tracked.failures - 1, 32),
        )
        delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not a secret
        tracked.next_attempt = time.monotonic() + delay
        tracked.last_error = reason
        lag = self.lag()[tracked.settings.name]
        log = self.logger.error if conflict else self.logger.warning
        log(
            "witness.conflict" if conflict else "witness.submit_failed",
            witness=tracked.settings.name,
            reason=reason,
            failures=tracked.failures,
            behind_records=lag.records,
            behind_seconds=round(lag.seconds, 3),
            retry_in_seconds=round(delay, 3),
        )

    # -- the store thread --------------------------------------------------------

    async def _in_store(self, function: Callable[..., T], *args: Any) -> T:
        assert self._thread is not None

        def call() -> T:
            if self._store is None:
                self._store = self._store_factory()
            try:
                return function(self._store, *args)
            except AuditError:
                self._close_store()  # reconnect on the next call
                raise

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


def _store_cosignatures(store: AuditStore, cosignatures: list[StoredCosignature]) -> None:
    store.add_cosignatures(cosignatures)


def _conflict_size(response: httpx.Response, body: bytes) -> int:
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type != SIZE_CONTENT_TYPE:
        raise SubmissionFailed(
            f"the witness's 409 is not of type {SIZE_CONTENT_TYPE}: {_excerpt(body)}", status=409
        )
    try:
        return parse_size(body)
    except ProtocolError as exc:
        raise SubmissionFailed(exc.reason, status=409) from exc


def _excerpt(body: bytes) -> str:
    """The start of a witness's answer, safe to log: one line of printable text."""
    text = body[:200].decode("utf-8", "replace").split("\n")[0]
    return "".join(c if c.isprintable() else "?" for c in text) or "(no body)"


async def _bounded(response: httpx.Response) -> bytes | None:
    """The answer's body, read no further than `_MAX_RESPONSE_BYTES`; None if longer."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > _MAX_RESPONSE_BYTES:
            return None
    return bytes(body)
