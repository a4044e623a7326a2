"""What one append or checkpoint transaction computes, given the head it locked.

These are pure functions of the committed head and the records, so that every writer
process, on any store, extends the one tree the same way:

- `batch_builder`: assign the next indexes, hash the leaves, collect the node hashes
  the store keeps, and compute the new head;
- `checkpoint_signer`: sign the committed head, after proving it extends the latest
  signed checkpoint (a log never signs a tree that rewrites what it signed before);
- `check_head`: at start, that the head extends the latest checkpoint and that the
  records after it hash to the head, in O(log n + unsigned tail) reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.audit.errors import IntegrityError, NoteError, ProofError
from gateway.audit.note import Checkpoint, NoteSigner, NoteVerifier, format_checkpoint
from gateway.audit.note import open_checkpoint as open_signed_checkpoint
from gateway.audit.proofs import StoredTree
from gateway.audit.records import PreparedRecord
from gateway.audit.stores.base import (
    NODE_LEVEL_STRIDE,
    AppendedBatch,
    AuditStore,
    BatchBuilder,
    CheckpointSigner,
    StoredCheckpoint,
    TreeHead,
)
from gateway.audit.tree import CompactRange, leaf_hash, range_subtrees, verify_consistency

__all__ = ["batch_builder", "check_head", "checkpoint_signer", "open_stored_checkpoint"]


def batch_builder(records: Sequence[PreparedRecord]) -> BatchBuilder:
    """The builder that appends `records`, in order, to whatever head is committed."""

    def build(head: TreeHead) -> AppendedBatch:
        state = head.state()
        start = head.tree_size
        rows: list[tuple[bytes, bytes, Any]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for offset, record in enumerate(records):
            data = record.with_index(start + offset)
            hash_ = leaf_hash(data)
            rows.append((data, hash_, record.fields))
            for level, index, node in state.append(hash_):
                if level % NODE_LEVEL_STRIDE == 0:
                    nodes.append((level, index, node))
        return AppendedBatch(start, rows, nodes, TreeHead(state.size, tuple(state.hashes)))

    return build


def open_stored_checkpoint(stored: StoredCheckpoint, verifier: NoteVerifier) -> Checkpoint:
    """The checkpoint a stored row holds, once its signature and columns check out."""
    try:
        checkpoint = open_signed_checkpoint(stored.note, verifier)
    except NoteError as exc:
        raise IntegrityError(exc.reason, tree_size=stored.tree_size) from exc
    if checkpoint.tree_size != stored.tree_size or checkpoint.root_hash != stored.root_hash:
        raise IntegrityError(
            "signed text differs from its stored size or root", tree_size=stored.tree_size
        )
    return checkpoint


def checkpoint_signer(
    signer: NoteSigner,
    origin: str,
    due: Callable[[TreeHead, StoredCheckpoint | None, int], bool],
    wall_clock: Callable[[], float] = time.time,
) -> CheckpointSigner:
    """A signer for `AuditStore.sign_checkpoint`: signs the head when `due(head, latest,
    now_us)` says so, after proving the head extends the latest checkpoint."""

    def sign(
        head: TreeHead, latest: StoredCheckpoint | None, store: Any
    ) -> StoredCheckpoint | None:
        now_us = int(wall_clock() * 1_000_000)
        signed = latest.tree_size if latest is not None else 0
        if head.tree_size < signed:
            raise IntegrityError(
                f"is missing; a checkpoint at size {signed} covers it (log truncated)",
                index=head.tree_size,
            )
        if head.tree_size == signed or not due(head, latest, now_us):
            return None
        root = head.root()
        if latest is not None:
            open_stored_checkpoint(latest, signer.verifier)
            proof = StoredTree(store).consistency_proof(latest.tree_size, head.tree_size)
            try:
                verify_consistency(latest.tree_size, head.tree_size, proof, latest.root_hash, root)
            except ProofError as exc:
                raise IntegrityError(
                    f"the tree head does not extend it ({exc.reason})", tree_size=signed
                ) from exc
        text = format_checkpoint(Checkpoint(origin, head.tree_size, root))
        return StoredCheckpoint(head.tree_size, root, signer.sign(text), now_us)

    return sign


def check_head(store: AuditStore, verifier: NoteVerifier) -> TreeHead:
    """The committed head, once it is shown to extend the latest signed checkpoint.

    Reads the stored subtree hashes that make the checkpoint's root, and re-hashes the
    records after it. Raises IntegrityError on any disagreement; a full verification
    (`verify_store`) then names the damage precisely.
    """
    with store.snapshot():
        return _check_head(store, verifier)


def _check_head(store: AuditStore, verifier: NoteVerifier) -> TreeHead:
    head = store.head()
    if head.tree_size > 0 and store.read_record(head.tree_size - 1) is None:
        raise IntegrityError("is missing", index=head.tree_size - 1)
    if store.read_record(head.tree_size) is not None:
        raise IntegrityError("lies beyond the tree head", index=head.tree_size)
    latest = store.latest_checkpoint()
    signed = 0
    state = CompactRange()
    if latest is not None:
        checkpoint = open_stored_checkpoint(latest, verifier)
        signed = checkpoint.tree_size
        if signed > head.tree_size:
            raise IntegrityError(
                f"is missing; a checkpoint at size {signed} covers it (log truncated)",
                index=head.tree_size,
            )
        tree = StoredTree(store)
        frontier = [tree.subtree_hash(level, index) for level, index in range_subtrees(0, signed)]
        state = CompactRange(signed, frontier)
        if state.root() != checkpoint.root_hash:
            raise IntegrityError("root does not match the stored records", tree_size=signed)
    for row in store.iter_records(signed):
        if row.index != state.size:
            raise IntegrityError("is missing", index=state.size)
        hash_ = leaf_hash(bytes(row.data))
        if hash_ != row.leaf_hash:
            raise IntegrityError("does not match its stored leaf hash", index=row.index)
        state.append(hash_)
    if state.size != head.tree_size or tuple(state.hashes) != head.frontier:
        raise IntegrityError("the stored tree head does not match the records")
    return head
