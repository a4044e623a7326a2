"""RFC 6962 / RFC 9162 Merkle tree hashing, the compact tree state, and proofs.

Leaves are hashed as SHA-256(0x00 || data) and interior nodes as
SHA-256(0x01 || left || right). A *complete subtree* `(level, index)` covers the
leaves `[index * 2**level, (index + 1) * 2**level)`.

Proof generation is split in two: `inclusion_ranges` / `consistency_ranges` say which
leaf ranges the proof needs the hashes of (pure arithmetic), and `range_subtrees`
breaks a range into complete subtrees, whose hashes a store keeps. This way a proof
over a large log reads O(log n) stored hashes instead of rehashing records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from gateway.audit.errors import ProofError

__all__ = [
    "CompactRange",
    "consistency_ranges",
    "fold_subtrees",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    """The root of the empty tree: SHA-256 of the empty string."""
    return hashlib.sha256(b"").digest()


class CompactRange:
    """The state of a growing tree: roots of its perfect subtrees, largest first.

    A tree of size n has one perfect subtree per set bit of n, so appending a leaf
    merges at most log2(n) nodes and the root is a fold of at most log2(n) hashes.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError("a compact range needs one hash per set bit of its size")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> CompactRange:
        """An independent copy (the writer works on one and swaps it in after commit)."""
        return CompactRange(self.size, self.hashes)

    def append(self, hash_: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the complete subtrees `(level, index, hash)` it closed."""
        completed: list[tuple[int, int, bytes]] = []
        level = 0
        position = self.size
        current = hash_
        # Each trailing one bit of the old size is a perfect subtree that now pairs up.
        while position & 1:
            current = node_hash(self.hashes.pop(), current)
            level += 1
            position >>= 1
            completed.append((level, position, current))
        self.hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The Merkle tree hash of all leaves appended so far."""
        if not self.hashes:
            return empty_root()
        current = self.hashes[-1]
        for hash_ in reversed(self.hashes[:-1]):
            current = node_hash(hash_, current)
        return current


def _largest_power_below(size: int) -> int:
    """The largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the RFC 6962 PATH(index, D[0:tree_size]), in order."""
    if not 0 <= index < tree_size:
        raise ProofError("leaf index is outside the tree")
    ranges: list[tuple[int, int]] = []
    start, end = 0, tree_size
    while end - start > 1:
        split = start + _largest_power_below(end - start)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the RFC 6962 PROOF(size1, D[0:size2]), in order."""
    if not 0 < size1 <= size2:
        raise ProofError("consistency needs 0 < size1 <= size2")
    ranges: list[tuple[int, int]] = []
    start, end, whole = 0, size2, True
    while True:
        if size1 == end - start:
            if not whole:
                ranges.append((start, end))
            break
        split = _largest_power_below(end - start)
        if size1 <= split:
            ranges.append((start + split, end))
            end = start + split
        else:
            ranges.append((start, start + split))
            size1 -= split
            start += split
            whole = False
    ranges.reverse()
    return ranges


def range_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees `(level, index)` that make up MTH(D[start:end]), left to right.

    Valid for the ranges the proofs above ask for: RFC 6962 splits at the largest
    power of two, so the left part is always a complete, aligned subtree.
    """
    subtrees: list[tuple[int, int]] = []
    while end - start > 0:
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            subtrees.append((level, start >> level))
            break
        split = _largest_power_below(size)
        level = split.bit_length() - 1
        subtrees.append((level, start >> level))
        start += split
    return subtrees


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete-subtree hashes (as from `range_subtrees`)."""
    current = hashes[-1]
    for hash_ in reversed(hashes[:-1]):
        current = node_hash(hash_, current)
    return current


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root over a power-of-two count of sibling hashes, combined pairwise."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def build_proof(
    ranges: Sequence[tuple[int, int]], subtree_hash: Callable[[int, int], bytes]
) -> list[bytes]:
    """Proof hashes for `ranges`, given a lookup of complete-subtree hashes."""
    return [
        fold_subtrees([subtree_hash(level, index) for level, index in range_subtrees(*r)])
        for r in ranges
    ]


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an RFC 9162 inclusion proof (section 2.1.3.2); raises ProofError if it fails."""
    if not 0 <= leaf_index < tree_size:
        raise ProofError("leaf index is outside the tree")
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        raise ProofError("hashes must be 32 bytes")
    node, last = leaf_index, tree_size - 1
    current = leaf_hash
    for sibling in proof:
        if len(sibling) != HASH_SIZE:
            raise ProofError("hashes must be 32 bytes")
        if last == 0:
            raise ProofError("inclusion proof is too long")
        if node & 1 or node == last:
            current = node_hash(sibling, current)
            while not node & 1 and node != 0:
                node >>= 1
                last >>= 1
        else:
            current = node_hash(current, sibling)
        node >>= 1
        last >>= 1
    if last != 0:
        raise ProofError("inclusion proof is too short")
    if current != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check an RFC 9162 consistency proof (section 2.1.4.2); raises ProofError if it fails.

    A proof from the empty tree is always rejected: it would prove nothing.
    """
    if size1 <= 0:
        raise ProofError("a consistency proof from an empty tree proves nothing")
    if size2 < size1:
        raise ProofError("the second tree is smaller than the first")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty proof")
        if root1 != root2:
            raise ProofError("trees of equal size have different roots")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    if any(len(hash_) != HASH_SIZE for hash_ in proof):
        raise ProofError("hashes must be 32 bytes")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    node, last = size1 - 1, size2 - 1
    while node & 1:
        node >>= 1
        last >>= 1
    first = second = path[0]
    for sibling in path[1:]:
        if last == 0:
            raise ProofError("consistency proof is too long")
        if node & 1 or node == last:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while not node & 1 and node != 0:
                node >>= 1
                last >>= 1
        else:
            second = node_hash(second, sibling)
        node >>= 1
        last >>= 1
    if last != 0:
        raise ProofError("consistency proof is too short")
    if first != root1:
        raise ProofError("consistency proof does not lead to the first root")
    if second != root2:
        raise ProofError("consistency proof does not lead to the second root")
