"""Verification of a whole stored log, as an auditor (or the log at startup) does it.

One pass in index order: every record is present, carries its own index, is in
canonical form, and hashes to its stored leaf hash; every stored checkpoint is
signed by the log's key and its root equals the root recomputed at its size; no
checkpoint (stored or trusted) covers records the store no longer has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.audit.errors import IntegrityError, NoteError, RecordError
from gateway.audit.jcs import parse_canonical
from gateway.audit.note import Checkpoint, NoteVerifier, open_checkpoint
from gateway.audit.store import AuditStore
from gateway.audit.tree import CompactRange, leaf_hash

__all__ = ["VerifiedLog", "check_record", "verify_store"]


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """The outcome of a successful verification: the tree state it recomputed."""

    tree_size: int
    root_hash: bytes
    state: CompactRange
    checkpoints_verified: int


def check_record(data: bytes, index: int) -> None:
    """Raise IntegrityError unless `data` is canonical JSON of an object carrying `index`."""
    try:
        value = parse_canonical(data)
    except RecordError as exc:
        raise IntegrityError(exc.reason, index=index) from exc
    carried = value.get("index") if isinstance(value, dict) else None
    if type(carried) is not int or carried != index:
        raise IntegrityError(f"carries index {carried!r}", index=index)


def verify_store(
    store: AuditStore,
    verifier: NoteVerifier,
    *,
    trusted: str | None = None,
    check_canonical: bool = True,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
) -> VerifiedLog:
    """Verify every record and checkpoint of `store`; raises IntegrityError at the first fault.

    `trusted` is a signed checkpoint the auditor kept from earlier; it exposes a
    store that was truncated or rewritten together with its own checkpoints.
    `check_canonical=False` skips the JSON checks (the log's own startup does).
    """
    expected: dict[int, Checkpoint] = {}
    for stored in store.checkpoints():
        try:
            checkpoint = open_checkpoint(stored.note, verifier)
        except NoteError as exc:
            raise IntegrityError(exc.reason, tree_size=stored.tree_size) from exc
        if checkpoint.tree_size != stored.tree_size or checkpoint.root_hash != stored.root_hash:
            raise IntegrityError(
                "signed text differs from its stored size or root", tree_size=stored.tree_size
            )
        expected[checkpoint.tree_size] = checkpoint
    trusted_checkpoint: Checkpoint | None = None
    if trusted is not None:
        try:
            trusted_checkpoint = open_checkpoint(trusted, verifier)
        except NoteError as exc:
            raise IntegrityError(f"trusted checkpoint: {exc.reason}") from exc
        if trusted_checkpoint.tree_size in expected and (
            expected[trusted_checkpoint.tree_size].root_hash != trusted_checkpoint.root_hash
        ):
            raise IntegrityError(
                "root differs from the trusted checkpoint of the same size (log rewritten)",
                tree_size=trusted_checkpoint.tree_size,
            )

    state = CompactRange()
    verified = 0
    for index, data, stored_hash in store.iter_records():
        if index != state.size:
            raise IntegrityError("is missing", index=state.size)
        if not isinstance(data, bytes | bytearray | memoryview):
            # Records are stored as BLOBs; any other type was written by someone else.
            raise IntegrityError("is not stored as bytes", index=index)
        data = bytes(data)
        if check_canonical:
            check_record(data, index)
        hash_ = leaf_hash(data)
        if hash_ != stored_hash:
            raise IntegrityError("does not match its stored leaf hash", index=index)
        state.append(hash_)
        size = state.size
        if progress is not None and size % progress_every == 0:
            progress(size)
        reached = expected.get(size)
        if reached is not None:
            if state.root() != reached.root_hash:
                raise IntegrityError(
                    f"root does not match the records {_span(expected, size)}", tree_size=size
                )
            verified += 1
        if (
            trusted_checkpoint is not None
            and trusted_checkpoint.tree_size == size
            and state.root() != trusted_checkpoint.root_hash
        ):
            raise IntegrityError(
                "root differs from the trusted checkpoint (log rewritten)", tree_size=size
            )

    for covering in (*expected.values(), trusted_checkpoint):
        if covering is not None and covering.tree_size > state.size:
            raise IntegrityError(
                f"is missing; a checkpoint at size {covering.tree_size} covers it (log truncated)",
                index=state.size,
            )
    return VerifiedLog(state.size, state.root(), state, verified)


def _span(expected: dict[int, Checkpoint], size: int) -> str:
    """Which records a failed checkpoint implicates: those after the previous good one."""
    previous = max((s for s in expected if s < size), default=0)
    return f"(a record in {previous}..{size - 1} was altered)"
