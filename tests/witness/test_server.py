"""The witness over a real socket, answering as c2sp.org/tlog-witness says: cosigns only
checkpoints that extend what it cosigned, keeps forks as evidence, never rolls back."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from gateway.audit import Checkpoint, format_checkpoint
from gateway.audit.cosignature import note_parts
from gateway.witness import format_add_checkpoint
from tests.witness import spec

from .conftest import ORIGIN, Log, RunningWitness


async def _submit(
    witness: RunningWitness, old: int, proof: list[bytes], note: str
) -> httpx.Response:
    return await witness.client.post(
        "/add-checkpoint", content=format_add_checkpoint(old, proof, note)
    )


def _cosigned_at(witness: RunningWitness, note: str, response: httpx.Response) -> int | None:
    """The timestamp of the response's cosignature, checked with the spec's algorithm."""
    text, _ = spec.note_text_and_lines(note)
    name, public = spec.public_key_of(witness.signer.verifier.to_string())
    lines = response.text.splitlines(keepends=True)
    assert lines
    assert all(line.startswith("\u2014 ") for line in lines)
    return spec.cosignature_timestamp(text, lines[0], name, public)


async def test_a_first_checkpoint_is_cosigned_with_a_cosignature_the_spec_accepts(
    witness: RunningWitness, log: Log
) -> None:
    note = log.checkpoint(5)
    response = await _submit(witness, 0, [], note)
    assert response.status_code == 200
    assert _cosigned_at(witness, note, response) is not None
    latest = witness.state.latest(ORIGIN)
    assert latest is not None
    assert (latest.tree_size, latest.note) == (5, note)


async def test_a_checkpoint_that_extends_the_cosigned_one_is_cosigned(
    witness: RunningWitness, log: Log
) -> None:
    assert (await _submit(witness, 0, [], log.checkpoint(5))).status_code == 200
    response = await _submit(witness, 5, log.proof(5, 13), log.checkpoint(13))
    assert response.status_code == 200
    assert _cosigned_at(witness, log.checkpoint(13), response) is not None
    assert witness.state.latest(ORIGIN).tree_size == 13  # type: ignore[union-attr]


async def test_a_split_view_is_refused_and_kept_as_evidence(
    witness: RunningWitness, log: Log
) -> None:
    """The log signs two different roots at size 8: the witness cosigns only the first."""
    honest, forked = log.checkpoint(8, "main"), log.checkpoint(8, "fork")
    assert (await _submit(witness, 0, [], honest)).status_code == 200
    response = await _submit(witness, 8, [], forked)
    assert response.status_code == 409
    assert response.headers["content-type"] == "text/x.tlog.size"
    assert response.content == b"8\n"
    [kept] = witness.state.evidence(ORIGIN)
    assert (kept.note, kept.known_note, kept.known_size, kept.status) == (forked, honest, 8, 409)
    assert witness.state.latest(ORIGIN).note == honest  # type: ignore[union-attr]


async def test_a_fork_behind_a_consistency_proof_is_refused_and_kept(
    witness: RunningWitness, log: Log
) -> None:
    assert (await _submit(witness, 0, [], log.checkpoint(8, "main"))).status_code == 200
    proof = log.proof(8, 12, "fork")
    response = await _submit(witness, 8, proof, log.checkpoint(12, "fork"))
    assert response.status_code == 422
    [kept] = witness.state.evidence()
    assert kept.note == log.checkpoint(12, "fork")
    assert kept.proof.splitlines() == [spec_b64(hash_) for hash_ in proof]
    assert witness.state.latest(ORIGIN).tree_size == 8  # type: ignore[union-attr]


def spec_b64(hash_: bytes) -> str:
    import base64

    return base64.b64encode(hash_).decode()


async def test_a_stale_old_size_gets_409_with_the_witness_size(
    witness: RunningWitness, log: Log
) -> None:
    assert (await _submit(witness, 0, [], log.checkpoint(8))).status_code == 200
    response = await _submit(witness, 3, log.proof(3, 20), log.checkpoint(20))
    assert (response.status_code, response.content) == (409, b"8\n")
    assert witness.state.evidence() == []


async def test_a_smaller_tree_is_never_cosigned(witness: RunningWitness, log: Log) -> None:
    assert (await _submit(witness, 0, [], log.checkpoint(8))).status_code == 200
    assert (await _submit(witness, 4, [], log.checkpoint(4))).status_code == 409
    assert (await _submit(witness, 8, [], log.checkpoint(4))).status_code == 400
    assert (await _submit(witness, 0, [], log.checkpoint(4))).status_code == 409
    assert witness.state.latest(ORIGIN).tree_size == 8  # type: ignore[union-attr]


async def test_the_same_checkpoint_again_is_cosigned_again(
    witness: RunningWitness, log: Log
) -> None:
    assert (await _submit(witness, 0, [], log.checkpoint(8))).status_code == 200
    assert (await _submit(witness, 8, [], log.checkpoint(8))).status_code == 200


async def test_an_unknown_origin_is_404(witness: RunningWitness, log: Log) -> None:
    note = log.checkpoint(3, origin="elsewhere.test/log")
    assert (await _submit(witness, 0, [], note)).status_code == 404


async def test_a_checkpoint_not_signed_by_the_log_key_is_403(
    witness: RunningWitness, log: Log
) -> None:
    from gateway.audit.note import generate_signer

    impostor = Log(generate_signer(ORIGIN))
    assert (await _submit(witness, 0, [], impostor.checkpoint(3))).status_code == 403
    text, lines = note_parts(log.checkpoint(3))
    altered = text.replace("\n3\n", "\n4\n") + "\n" + lines[0]
    assert (await _submit(witness, 0, [], altered)).status_code == 403
    assert witness.state.latest(ORIGIN) is None


async def test_a_proof_from_size_zero_must_be_empty(witness: RunningWitness, log: Log) -> None:
    response = await _submit(witness, 0, [b"\x00" * 32], log.checkpoint(3))
    assert response.status_code == 422


async def test_an_empty_tree_has_only_the_empty_root(witness: RunningWitness, log: Log) -> None:
    """RFC 6962: the root of a tree of size 0 is SHA-256 of nothing; any other is a lie
    the log signed, kept as evidence."""
    bogus = log.signer.sign(format_checkpoint(Checkpoint(ORIGIN, 0, b"\x07" * 32)))
    response = await _submit(witness, 0, [], bogus)
    assert response.status_code == 422
    [kept] = witness.state.evidence(ORIGIN)
    assert kept.note == bogus
    assert witness.state.latest(ORIGIN) is None
    empty = log.signer.sign(format_checkpoint(Checkpoint(ORIGIN, 0, hashlib.sha256().digest())))
    assert (await _submit(witness, 0, [], empty)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",
        b"old 00\n\n{note}",
        b"old -1\n\n{note}",
        b"old 1 \n\n{note}",
        b"new 0\n\n{note}",
        b"old 0\nnot base64!\n\n{note}",
        b"old 0\nAAAA\n\n{note}",
        b"old 0\n\n",
        b"old 0\n\nno signature block\n",
        b"old 0\n\n\xff\xfe{note}",
        b"old 0\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\n{note}",
    ],
    ids=[
        "empty",
        "no checkpoint",
        "leading zero",
        "negative",
        "trailing space",
        "no old line",
        "proof not base64",
        "proof hash too short",
        "empty checkpoint",
        "not a note",
        "not UTF-8",
        "64 proof lines",
    ],
)
async def test_a_malformed_request_is_400(witness: RunningWitness, log: Log, body: bytes) -> None:
    body = body.replace(b"{note}", log.checkpoint(3).encode())
    response = await witness.client.post("/add-checkpoint", content=body)
    assert response.status_code == 400


async def test_only_post_is_allowed_and_large_bodies_are_refused(
    witness: RunningWitness, log: Log
) -> None:
    assert (await witness.client.get("/add-checkpoint")).status_code == 405
    response = await witness.client.post("/add-checkpoint", content=b"old 0\n" * 20000)
    assert response.status_code == 413


async def test_concurrent_submissions_never_roll_the_log_back(
    witness: RunningWitness, log: Log
) -> None:
    """The old-size check and the update are one step: of many submissions from the
    same old size, one wins and every other one is told the new size."""
    assert (await _submit(witness, 0, [], log.checkpoint(8))).status_code == 200
    sizes = list(range(9, 41))
    responses = await asyncio.gather(
        *(_submit(witness, 8, log.proof(8, size), log.checkpoint(size)) for size in sizes)
    )
    won = [size for size, r in zip(sizes, responses, strict=True) if r.status_code == 200]
    assert len(won) == 1
    assert all(r.status_code == 409 for r in responses if r.status_code != 200)
    assert witness.state.latest(ORIGIN).tree_size == won[0]  # type: ignore[union-attr]
