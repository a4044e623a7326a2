"""Proofs and roots computed from a store's hashes, without rehashing records."""

from __future__ import annotations

from gateway.audit.errors import IntegrityError
from gateway.audit.stores.base import NODE_LEVEL_STRIDE, AuditStore
from gateway.audit.tree import (
    build_proof,
    consistency_ranges,
    empty_root,
    fold_subtrees,
    inclusion_ranges,
    perfect_root,
    range_subtrees,
)

__all__ = ["StoredTree"]


class StoredTree:
    """Reads complete-subtree hashes from a store and builds proofs and roots from them."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    def subtree_hash(self, level: int, index: int) -> bytes:
        """The hash of complete subtree `(level, index)` from the nearest stored level below."""
        base = level - level % NODE_LEVEL_STRIDE
        count = 1 << (level - base)
        hashes = self._store.read_hashes(base, index * count, (index + 1) * count)
        if len(hashes) != count:
            raise IntegrityError(f"stored hashes for subtree {level}/{index} are missing")
        return perfect_root(hashes)

    def root(self, tree_size: int) -> bytes:
        """The Merkle tree hash of the first `tree_size` records."""
        if tree_size == 0:
            return empty_root()
        return fold_subtrees(
            [self.subtree_hash(level, index) for level, index in range_subtrees(0, tree_size)]
        )

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The RFC 6962 inclusion proof of leaf `index` in the tree of `tree_size`."""
        return build_proof(inclusion_ranges(index, tree_size), self.subtree_hash)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 6962 consistency proof from tree `size1` to tree `size2`."""
        return build_proof(consistency_ranges(size1, size2), self.subtree_hash)
