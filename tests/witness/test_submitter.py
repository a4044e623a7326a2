"""The gateway's side of tlog-witness: the submitter against real witness apps (in
process), and against witnesses that are down, forked or dishonest."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.audit import AuditLog, AuditSettings, Checkpoint, format_checkpoint, load_signer
from gateway.audit.cosignature import generate_cosigner
from gateway.witness import WitnessState, format_add_checkpoint
from tests.witness import spec

from .conftest import ORIGIN
from .support import (
    Running,
    Witnessing,
    append,
    caught_up,
    log_note,
    until,
    witness_apps,
)


@pytest.fixture
def fast(settings: AuditSettings) -> AuditSettings:
    return dataclasses.replace(settings, witness_retry_seconds=0.05, witness_retry_max_seconds=0.2)


@pytest.fixture
async def witnessing(fast: AuditSettings, tmp_path: Path) -> AsyncIterator[Witnessing]:
    signers, apps, states = witness_apps(fast, tmp_path, 2)
    async with Running(fast, signers, apps, states) as running:
        yield running


async def test_each_signed_checkpoint_is_cosigned_and_served_with_the_cosignatures(
    witnessing: Witnessing,
) -> None:
    await append(witnessing.log, 25)  # checkpoints at 10 and 20
    await until(caught_up(witnessing.submitter, 20))
    note = await witnessing.log.latest_checkpoint()
    assert note is not None
    text, lines = spec.note_text_and_lines(note)
    assert text.split("\n")[1] == "20"
    for signer in witnessing.signers:
        name, public = spec.public_key_of(signer.verifier.to_string())
        assert any(spec.cosignature_timestamp(text, line, name, public) for line in lines)


async def test_a_witness_that_knows_a_later_size_gets_the_proof_from_it(
    fast: AuditSettings, tmp_path: Path
) -> None:
    """A 409 names the witness's size; the submitter resubmits with the proof from it."""
    signers, apps, states = witness_apps(fast, tmp_path, 1)
    log = AuditLog(fast)
    await log.start()
    await append(log, 12)
    await log.stop()  # the latest checkpoint is at 12
    first = log_note(fast)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0])) as client:
        fed = await client.post(
            "http://w/add-checkpoint", content=format_add_checkpoint(0, [], first)
        )
        assert fed.status_code == 200
    async with Running(fast, signers, apps, states) as running:
        assert running.submitter.lag()  # known before anything was cosigned here
        await append(running.log, 10, start=12)  # a checkpoint at 22
        await until(caught_up(running.submitter, 22))
        assert states[0].latest(ORIGIN).tree_size == 22  # type: ignore[union-attr]


async def test_a_witness_holding_a_fork_is_reported_as_a_conflict(
    fast: AuditSettings, tmp_path: Path
) -> None:
    signers, apps, states = witness_apps(fast, tmp_path, 1)
    signer = load_signer(fast.signing_key)
    forked = signer.sign(format_checkpoint(Checkpoint(ORIGIN, 10, b"\x66" * 32)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0])) as client:
        response = await client.post(
            "http://w/add-checkpoint", content=format_add_checkpoint(0, [], forked)
        )
        assert response.status_code == 200
    with capture_logs() as logs:
        async with Running(fast, signers, apps, states) as running:
            await append(running.log, 15)
            await until(lambda: running.submitter.lag()[signers[0].name].failures >= 2)
            lag = running.submitter.lag()[signers[0].name]
            assert lag.records > 0
            assert "forked" in (lag.last_error or "")
            assert states[0].latest(ORIGIN).note == forked  # type: ignore[union-attr]
    conflicts = [entry for entry in logs if entry["event"] == "witness.conflict"]
    assert conflicts
    assert conflicts[0]["log_level"] == "error"


async def test_a_down_witness_is_retried_with_exponential_backoff(
    settings: AuditSettings, tmp_path: Path
) -> None:
    retry = dataclasses.replace(settings, witness_retry_seconds=0.1, witness_retry_max_seconds=1.6)
    attempts: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(time.monotonic())
        raise httpx.ConnectError("connection refused", request=request)

    signers = [generate_cosigner("witness.test/w0")]
    with capture_logs() as logs:
        async with Running(
            retry, signers, [], [], transport=lambda _: httpx.MockTransport(refuse)
        ) as running:
            await append(running.log, 10)  # a checkpoint at 10
            await until(lambda: len(attempts) >= 6, seconds=15)
            lag = running.submitter.lag()[signers[0].name]
            assert lag.records == 10
            assert lag.seconds > 0
            assert lag.failures >= 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # Each delay is drawn from [d/2, d] with d doubling: two steps on it is at least twice
    # as long (less a little for the scheduler), and none exceeds the maximum.
    assert gaps[3] >= 1.5 * gaps[1]
    assert gaps[4] >= 1.5 * gaps[2]
    assert max(gaps) <= 1.6 + 0.3
    failures = [entry for entry in logs if entry["event"] == "witness.submit_failed"]
    assert failures[-1]["behind_records"] == 10
    assert failures[-1]["retry_in_seconds"] > 0


async def test_a_cosignature_that_does_not_verify_is_never_stored(
    fast: AuditSettings, tmp_path: Path
) -> None:
    liar = generate_cosigner("witness.test/w0")

    def answer(request: httpx.Request) -> httpx.Response:
        note = request.content.decode().split("\n\n", 1)[1]
        text = note[: note.rindex("\n\n") + 1]
        honest = liar.cosign(text, int(time.time()))
        other = generate_cosigner("witness.test/other").cosign(text, 1)
        forged = liar.cosign(text.replace("\n10\n", "\n11\n"), int(time.time()))
        return httpx.Response(200, text=other + forged + honest)

    async with Running(
        fast, [liar], [], [], transport=lambda _: httpx.MockTransport(answer)
    ) as running:
        await append(running.log, 10)
        await until(lambda: running.submitter.lag()[liar.name].failures >= 1)
        assert "does not verify" in (running.submitter.lag()[liar.name].last_error or "")
        note = await running.log.latest_checkpoint()
        assert note is not None
        assert liar.name not in note


async def test_an_endless_answer_is_read_no_further_than_the_limit(
    fast: AuditSettings, tmp_path: Path
) -> None:
    """A witness that streams without end costs the gateway 64 KiB, not its memory."""
    flood = generate_cosigner("witness.test/flood")
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(100_000):  # 6.4 GB if read to the end
            sent.append(1)
            yield b"x" * 65_536

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    async with Running(
        fast, [flood], [], [], transport=lambda _: httpx.MockTransport(answer)
    ) as running:
        await append(running.log, 10)
        await until(lambda: running.submitter.lag()[flood.name].failures >= 1)
        assert "too large" in (running.submitter.lag()[flood.name].last_error or "")
    assert len(sent) < 10


async def test_lines_by_other_keys_are_ignored_and_only_the_witness_line_is_stored(
    fast: AuditSettings, tmp_path: Path
) -> None:
    witness = generate_cosigner("witness.test/w0")
    stranger = generate_cosigner("witness.test/stranger")

    def answer(request: httpx.Request) -> httpx.Response:
        note = request.content.decode().split("\n\n", 1)[1]
        text = note[: note.rindex("\n\n") + 1]
        return httpx.Response(200, text=stranger.cosign(text, 1) + witness.cosign(text, 2))

    async with Running(
        fast, [witness], [], [], transport=lambda _: httpx.MockTransport(answer)
    ) as running:
        await append(running.log, 10)
        await until(caught_up(running.submitter, 10))
        note = await running.log.latest_checkpoint()
        assert note is not None
        assert witness.name in note
        assert stranger.name not in note


async def test_the_final_checkpoint_is_submitted_when_the_gateway_stops(
    fast: AuditSettings, tmp_path: Path
) -> None:
    signers, apps, states = witness_apps(fast, tmp_path, 1)
    async with Running(fast, signers, apps, states) as running:
        await append(running.log, 13)  # a checkpoint at 10; 13 is signed at stop
        await until(caught_up(running.submitter, 10))
    reopened = WitnessState(tmp_path / "witness-0.db")
    assert reopened.latest(ORIGIN).tree_size == 13  # type: ignore[union-attr]
    reopened.close()
