"""Witness benchmark: how long a witness takes to cosign, and what checking costs.

A witness (gateway witness serve's app, under uvicorn on 127.0.0.1) receives 300
add-checkpoint requests in sequence, each extending the last by 1,000 records with an
RFC 6962 consistency proof; every answer follows a durable (synchronous=FULL) update
of its state file. Also timed: verifying one cosignature, and the consistency proof
check the witness does. Medians and p99 with time.perf_counter_ns.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import time
from pathlib import Path

import httpx
import structlog
import uvicorn

from gateway.audit import Checkpoint, CompactRange, format_checkpoint, leaf_hash
from gateway.audit.cosignature import generate_cosigner
from gateway.audit.note import generate_signer
from gateway.audit.tree import build_proof, consistency_ranges, node_hash, verify_consistency
from gateway.witness import WitnessedLog, WitnessState, build_witness_app, format_add_checkpoint

ORIGIN = "bench.test/audit"
STEP = 1000
SUBMISSIONS = 300


def _ms(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1e6, samples[int(len(samples) * 0.99)] / 1e6


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


def _tree(size: int) -> tuple[list[bytes], CompactRange]:
    hashes = [leaf_hash(b"record %d" % i) for i in range(size)]
    state = CompactRange()
    for hash_ in hashes:
        state.append(hash_)
    return hashes, state


_SUBTREES: dict[tuple[int, int], bytes] = {}


def _consistency(hashes: list[bytes], old: int, new: int) -> list[bytes]:
    def subtree(level: int, index: int) -> bytes:
        if level == 0:
            return hashes[index]
        found = _SUBTREES.get((level, index))
        if found is None:
            found = node_hash(subtree(level - 1, 2 * index), subtree(level - 1, 2 * index + 1))
            _SUBTREES[(level, index)] = found
        return found

    return build_proof(consistency_ranges(old, new), subtree)


async def main() -> None:
    # The witness logs a line per cosignature: keep the benchmark's output to its numbers.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    log = generate_signer(ORIGIN)
    witness = generate_cosigner("bench.test/witness")
    hashes, _ = _tree(STEP * SUBMISSIONS)
    roots = {}
    state = CompactRange()
    for index, hash_ in enumerate(hashes):
        state.append(hash_)
        if (index + 1) % STEP == 0:
            roots[index + 1] = state.root()
    with tempfile.TemporaryDirectory() as folder:
        store = WitnessState(Path(folder) / "witness.db")
        app = build_witness_app({ORIGIN: WitnessedLog(ORIGIN, log.verifier)}, witness, store)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = _Server(uvicorn.Config(app, log_level="warning", access_log=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/add-checkpoint"
        samples = []
        async with httpx.AsyncClient() as client:
            old = 0
            for size in sorted(roots):
                note = log.sign(format_checkpoint(Checkpoint(ORIGIN, size, roots[size])))
                proof = _consistency(hashes, old, size) if old else []
                body = format_add_checkpoint(old, proof, note)
                started = time.perf_counter_ns()
                response = await client.post(url, content=body)
                samples.append(time.perf_counter_ns() - started)
                assert response.status_code == 200, response.text
                old = size
        server.should_exit = True
        await task
    p50, p99 = _ms(samples)
    print(f"add-checkpoint, durable, sequential: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    text = format_checkpoint(Checkpoint(ORIGIN, STEP, roots[STEP]))
    line = witness.cosign(text, 1700000000)
    verifying = []
    for _ in range(2000):
        started = time.perf_counter_ns()
        witness.verifier.verify(text, line)
        verifying.append(time.perf_counter_ns() - started)
    proof = _consistency(hashes, STEP * 100, STEP * 300)
    checking = []
    for _ in range(2000):
        started = time.perf_counter_ns()
        verify_consistency(STEP * 100, STEP * 300, proof, roots[STEP * 100], roots[STEP * 300])
        checking.append(time.perf_counter_ns() - started)
    print(f"verify one cosignature: p50 {_ms(verifying)[0] * 1e3:.1f} us")
    print(f"check a consistency proof (100k -> 300k): p50 {_ms(checking)[0] * 1e3:.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
