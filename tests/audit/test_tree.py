import base64
import hashlib
import json
from functools import cache
from pathlib import Path

import pytest

from gateway.audit import CompactRange, ProofError, leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.tree import build_proof, consistency_ranges, inclusion_ranges

from .conftest import VECTORS

RFC6962 = VECTORS / "rfc6962"


def _cases(kind: str) -> list[Path]:
    # A missing vector folder must fail the suite, not shrink it to nothing.
    found = sorted((RFC6962 / kind).rglob("*.json"))
    return found or [RFC6962 / kind / "<no vectors found>"]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_all_published_rfc6962_vectors_are_present() -> None:
    assert len(_cases("inclusion")) + len(_cases("consistency")) == 196


@pytest.mark.parametrize(
    "path", _cases("inclusion"), ids=lambda p: str(p.relative_to(RFC6962 / "inclusion"))
)
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    arguments = (
        case["leafIdx"],
        case["treeSize"],
        _b64(case["leafHash"]),
        [_b64(p) for p in case["proof"] or []],
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments)
    else:
        verify_inclusion(*arguments)


@pytest.mark.parametrize(
    "path", _cases("consistency"), ids=lambda p: str(p.relative_to(RFC6962 / "consistency"))
)
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    arguments = (
        case["size1"],
        case["size2"],
        [_b64(p) for p in case["proof"] or []],
        _b64(case["root1"]),
        _b64(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments)
    else:
        verify_consistency(*arguments)


def test_root_of_the_first_eight_published_leaves() -> None:
    inputs = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
    state = CompactRange()
    for text in inputs:
        state.append(leaf_hash(bytes.fromhex(text)))
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert expected == state.root().hex()


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == CompactRange().root()


class NaiveTree:
    """RFC 6962 section 2.1 written out recursively, as the reference."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    @cache  # noqa: B019 - instances live for one test
    def mth(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return leaf_hash(self.leaves[start])
        split = start + _power_below(end - start)
        return hashlib.sha256(b"\x01" + self.mth(start, split) + self.mth(split, end)).digest()

    def path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        split = start + _power_below(end - start)
        if index < split:
            return [*self.path(index, start, split), self.mth(split, end)]
        return [*self.path(index, split, end), self.mth(start, split)]

    def subproof(self, size1: int, start: int, end: int, whole: bool) -> list[bytes]:
        if size1 == end - start:
            return [] if whole else [self.mth(start, end)]
        split = _power_below(end - start)
        if size1 <= split:
            return [
                *self.subproof(size1, start, start + split, whole),
                self.mth(start + split, end),
            ]
        return [
            *self.subproof(size1 - split, start + split, end, False),
            self.mth(start, start + split),
        ]


def _power_below(size: int) -> int:
    power = 1
    while power * 2 < size:
        power *= 2
    return power


MAX_SIZE = 300


@pytest.fixture(scope="module")
def naive() -> NaiveTree:
    return NaiveTree([f"leaf {i}".encode() for i in range(MAX_SIZE)])


def _lookup(naive: NaiveTree):  # type: ignore[no-untyped-def]
    return lambda level, index: naive.mth(index << level, (index + 1) << level)


def test_compact_range_roots_match_the_reference_for_sizes_1_to_300(naive: NaiveTree) -> None:
    state = CompactRange()
    for size in range(1, MAX_SIZE + 1):
        state.append(leaf_hash(naive.leaves[size - 1]))
        assert naive.mth(0, size) == state.root(), size


def test_compact_range_reports_each_completed_subtree(naive: NaiveTree) -> None:
    state = CompactRange()
    for size in range(1, MAX_SIZE + 1):
        for level, index, hash_ in state.append(leaf_hash(naive.leaves[size - 1])):
            assert naive.mth(index << level, (index + 1) << level) == hash_


def test_inclusion_proofs_match_the_reference_and_verify(naive: NaiveTree) -> None:
    lookup = _lookup(naive)
    for size in range(1, MAX_SIZE + 1):
        root = naive.mth(0, size)
        for index in range(size):
            proof = build_proof(inclusion_ranges(index, size), lookup)
            assert naive.path(index, 0, size) == proof
            verify_inclusion(index, size, leaf_hash(naive.leaves[index]), proof, root)


def test_consistency_proofs_match_the_reference_and_verify(naive: NaiveTree) -> None:
    lookup = _lookup(naive)
    for size2 in range(1, MAX_SIZE + 1):
        root2 = naive.mth(0, size2)
        for size1 in range(1, size2 + 1):
            proof = build_proof(consistency_ranges(size1, size2), lookup)
            assert naive.subproof(size1, 0, size2, True) == proof
            verify_consistency(size1, size2, proof, naive.mth(0, size1), root2)


def test_inclusion_proof_for_another_leaf_is_rejected(naive: NaiveTree) -> None:
    proof = build_proof(inclusion_ranges(5, 100), _lookup(naive))
    with pytest.raises(ProofError):
        verify_inclusion(6, 100, leaf_hash(naive.leaves[6]), proof, naive.mth(0, 100))


def test_consistency_proof_against_a_forked_tree_is_rejected(naive: NaiveTree) -> None:
    proof = build_proof(consistency_ranges(50, 100), _lookup(naive))
    forked = NaiveTree([*naive.leaves[:49], b"forged", *naive.leaves[50:100]])
    with pytest.raises(ProofError):
        verify_consistency(50, 100, proof, forked.mth(0, 50), naive.mth(0, 100))


def test_proof_ranges_reject_impossible_sizes() -> None:
    with pytest.raises(ProofError):
        inclusion_ranges(3, 3)
    with pytest.raises(ProofError):
        consistency_ranges(0, 3)
