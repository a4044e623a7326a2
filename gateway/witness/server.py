"""The witness: an HTTP service that cosigns a log's checkpoints (c2sp.org/tlog-witness).

`POST /add-checkpoint` (the submission prefix is the server's root) checks, in the order
of the spec's "add-checkpoint" section:

1. the body is well formed                                  else 400 Bad Request
2. the checkpoint's origin is a configured log               else 404 Not Found
3. a signature by that log's key verifies (others ignored)   else 403 Forbidden
4. the old size is at most the checkpoint's size             else 400 Bad Request
5. atomically with 6-8 and the update: the old size is the size of the latest
   checkpoint cosigned for the origin (0 if none)            else 409 Conflict, body
                                                             `<that size>\\n`, type
                                                             text/x.tlog.size
6. if the old size is the checkpoint's size, the roots are
   the same                                                  else 409 (evidence kept)
   and the proof is empty                                    else 422
7. from old size 0, the proof is empty                       else 422
   (and a checkpoint of size 0 has the empty tree's root,
   SHA-256 of nothing                                        else 422, evidence kept)
8. otherwise the RFC 6962 consistency proof from the stored
   root to the checkpoint's root verifies                    else 422 (evidence kept)

Then the checkpoint becomes the latest for its origin, durably, and the answer is 200
with the witness's cosignature line (c2sp.org/tlog-cosignature). A checkpoint refused
at 6 or 8 is signed by the log yet does not extend what the witness cosigned: it is
kept in the state file as evidence of a fork, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.audit import Checkpoint, NoteError, ProofError, parse_checkpoint, verify_consistency
from gateway.audit.cosignature import CosignatureSigner, note_parts
from gateway.audit.note import open_note
from gateway.logs import get_logger
from gateway.witness.errors import ProtocolError
from gateway.witness.protocol import (
    MAX_REQUEST_BYTES,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    format_size,
    parse_add_checkpoint,
)
from gateway.witness.settings import WitnessedLog
from gateway.witness.state import Evidence, LatestCheckpoint, Outcome, WitnessState, proof_lines

__all__ = ["Verdict", "Witness", "build_witness_app", "judge"]

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: the hash of an empty tree


@dataclass(frozen=True, slots=True)
class Verdict:
    """The witness's answer to one submission: HTTP `status`, a one-sentence `reason`,
    and for a 409 the `size` of the latest checkpoint it cosigned."""

    status: int
    reason: str
    size: int | None = None
    evidence: bool = False


def judge(
    latest: LatestCheckpoint | None, request: AddCheckpoint, checkpoint: Checkpoint
) -> Verdict:
    """Steps 5-8 above, given the latest checkpoint cosigned for the origin (or None)."""
    known_size = latest.tree_size if latest is not None else 0
    if request.old_size != known_size:
        return Verdict(409, "the old size is not the size this witness cosigned", known_size)
    if latest is not None and request.old_size == checkpoint.tree_size:
        if checkpoint.root_hash != latest.root_hash:
            reason = "a different root at the size this witness cosigned"
            return Verdict(409, reason, known_size, evidence=True)
        if request.proof:
            return Verdict(422, "a consistency proof between equal sizes must be empty")
        return Verdict(200, "cosigned")
    if request.old_size == 0:
        if request.proof:
            return Verdict(422, "a consistency proof from size 0 must be empty")
        if checkpoint.tree_size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            reason = "a checkpoint of size 0 must carry the empty tree's root"
            return Verdict(422, reason, evidence=True)
        return Verdict(200, "cosigned")
    assert latest is not None
    try:
        verify_consistency(
            request.old_size,
            checkpoint.tree_size,
            request.proof,
            latest.root_hash,
            checkpoint.root_hash,
        )
    except ProofError as exc:
        return Verdict(422, f"the consistency proof does not verify: {exc.reason}", evidence=True)
    return Verdict(200, "cosigned")


class Witness:
    """Cosigns checkpoints of the `logs` it knows, with `signer`, keeping `state`.

    `clock` (POSIX seconds) dates the cosignatures and the evidence.
    """

    def __init__(
        self,
        logs: Mapping[str, WitnessedLog],
        signer: CosignatureSigner,
        state: WitnessState,
        *,
        clock: Callable[[], float] = time.time,
        logger: Any = None,
    ) -> None:
        self.logs = logs
        self.signer = signer
        self.state = state
        self.clock = clock
        self.logger = logger or get_logger()

    async def add_checkpoint(self, request: Request) -> Response:
        """The `add-checkpoint` endpoint."""
        body = await _bounded_body(request)
        if body is None:
            return _text(413, "the request body is too large")
        try:
            submission = parse_add_checkpoint(body)
            text, _ = note_parts(submission.note)
            checkpoint = parse_checkpoint(text)
        except ProtocolError as exc:
            return self._refuse(400, exc.reason)
        except NoteError as exc:
            return self._refuse(400, f"the checkpoint is malformed: {exc.reason}")
        log = self.logs.get(checkpoint.origin)
        if log is None:
            return self._refuse(404, "this witness does not know the checkpoint's origin")
        try:
            open_note(submission.note, log.key)
        except NoteError as exc:
            return self._refuse(403, exc.reason, origin=checkpoint.origin)
        if submission.old_size > checkpoint.tree_size:
            return self._refuse(400, "the old size is larger than the checkpoint's size")
        now = self.clock()
        verdict: Verdict = await asyncio.to_thread(
            self.state.advance,
            checkpoint.origin,
            lambda latest: self._outcome(latest, submission, checkpoint, now),
            int(now * 1_000_000),
        )
        if verdict.status == 200:
            self.logger.info(
                "witness.cosigned",
                origin=checkpoint.origin,
                tree_size=checkpoint.tree_size,
                old_size=submission.old_size,
            )
            return PlainTextResponse(self.signer.cosign(text, int(now)))
        if verdict.evidence:
            self.logger.error(
                "witness.evidence",
                origin=checkpoint.origin,
                tree_size=checkpoint.tree_size,
                old_size=submission.old_size,
                status=verdict.status,
                reason=verdict.reason,
            )
        if verdict.status == 409:
            assert verdict.size is not None
            self._log_refusal(409, verdict.reason, checkpoint.origin)
            # Exactly this type: Starlette would add "; charset=utf-8" to a media_type.
            body = (format_size(verdict.size) + "\n").encode()
            return Response(body, 409, headers={"content-type": SIZE_CONTENT_TYPE})
        return self._refuse(verdict.status, verdict.reason, origin=checkpoint.origin)

    def _outcome(
        self,
        latest: LatestCheckpoint | None,
        submission: AddCheckpoint,
        checkpoint: Checkpoint,
        now: float,
    ) -> Outcome:
        verdict = judge(latest, submission, checkpoint)
        if verdict.status == 200:
            accepted = LatestCheckpoint(
                checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash, submission.note
            )
            return Outcome(verdict, accept=accepted)
        if verdict.evidence:
            evidence = Evidence(
                origin=checkpoint.origin,
                received_us=int(now * 1_000_000),
                reason=verdict.reason,
                status=verdict.status,
                old_size=submission.old_size,
                proof=proof_lines(submission.proof),
                note=submission.note,
                known_size=latest.tree_size if latest is not None else 0,
                known_note=latest.note if latest is not None else None,
            )
            return Outcome(verdict, evidence=evidence)
        return Outcome(verdict)

    def _refuse(self, status: int, reason: str, *, origin: str | None = None) -> Response:
        self._log_refusal(status, reason, origin)
        return _text(status, reason)

    def _log_refusal(self, status: int, reason: str, origin: str | None) -> None:
        self.logger.warning("witness.refused", status=status, reason=reason, origin=origin)


async def _bounded_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(status: int, reason: str) -> Response:
    return PlainTextResponse(reason + "\n", status_code=status)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def build_witness_app(
    logs: Mapping[str, WitnessedLog],
    signer: CosignatureSigner,
    state: WitnessState,
    *,
    clock: Callable[[], float] = time.time,
    logger: Any = None,
) -> Starlette:
    """The witness's ASGI app; the state file is closed when the app shuts down."""
    witness = Witness(logs, signer, state, clock=clock, logger=logger)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        witness.logger.info(
            "witness.started",
            witness=signer.verifier.to_string(),
            logs=sorted(witness.logs),
        )
        try:
            yield
        finally:
            state.close()
            witness.logger.info("witness.stopped")

    app = Starlette(
        routes=[
            Route("/add-checkpoint", witness.add_checkpoint, methods=["POST"]),
            Route("/healthz", _healthz),
        ],
        lifespan=lifespan,
    )
    app.state.witness = witness
    return app
