"""Witnesses end to end: a real gateway keeps serving while its witness is down, reports
the lag, and catches up once the witness (a real `gateway witness` app on its own
socket) comes up; auditors get the cosigned checkpoint and `verify --quorum` holds."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from gateway.audit import load_verifier
from gateway.audit.cosignature import CosignatureSigner, generate_cosigner
from gateway.demo.material import ORIGIN
from gateway.witness import WitnessedLog, WitnessState, build_witness_app
from tests.audit.test_cli import run_cli
from tests.e2e.crash_gateway import free_port
from tests.e2e.test_metrics import scrape_until
from tests.harness import Clock, RunningGateway, running_gateway
from tests.servers import PromptServer
from tests.telemetry.samples import value
from tests.witness import spec

CHAT = "/v1/chat/completions"


@contextlib.asynccontextmanager
async def _witness_on(sock: socket.socket, app: object) -> AsyncIterator[None]:
    """Serve the witness on a socket that was bound (refusing connections) until now."""
    server = PromptServer(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _ask(gateway: RunningGateway) -> float:
    started = time.monotonic()
    response = await gateway.client("alice").post(
        CHAT, json={"model": "muse-1", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 200
    return time.monotonic() - started


async def _until(condition, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_down_witness_never_blocks_serving_and_catches_up_when_it_comes_up(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    signer: CosignatureSigner = generate_cosigner("witness.agency.test/w1")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    metrics_port = free_port()
    metrics = f"http://127.0.0.1:{metrics_port}"
    overrides = {
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "audit_witnesses": [{"url": url, "key": signer.verifier.to_string()}],
        "audit_witness_retry_seconds": 0.05,
        "audit_witness_retry_max_seconds": 0.4,
        "audit_witness_timeout_seconds": 2,
    }
    state = WitnessState(tmp_path / "witness" / "state.db")
    log_key = load_verifier(pki / "audit-signing.pub")
    app = build_witness_app({ORIGIN: WitnessedLog(ORIGIN, log_key)}, signer, state)
    async with contextlib.AsyncExitStack() as witness_up:
        async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as gateway:
            submitter = gateway.gateway.witnesses
            latencies = [await _ask(gateway) for _ in range(5)]
            await _until(lambda: submitter.lag()[signer.name].failures >= 3)
            latencies += [await _ask(gateway) for _ in range(5)]
            lag = submitter.lag()[signer.name]
            assert lag.records > 0
            assert lag.seconds > 0
            assert lag.cosigned_size == 0
            ready = await gateway.client(None).get("/readyz")
            assert ready.status_code == 200
            [reported] = ready.json()["witnesses"]
            assert reported["witness"] == signer.name
            assert reported["behind_records"] > 0
            assert reported["failures"] >= 3
            # Serving never waited on the witness (connections refused, retries, backoff).
            assert max(latencies) < 1.0
            # ... and the lag is on /metrics, growing while the witness is down.
            await scrape_until(
                metrics,
                lambda s: value(s, "gateway_witness_lag_seconds", witness=signer.name) > 0,
            )

            await witness_up.enter_async_context(_witness_on(sock, app))
            latencies = [await _ask(gateway) for _ in range(5)]
            await _until(
                lambda: (
                    submitter.lag()[signer.name].records == 0
                    and submitter.lag()[signer.name].cosigned_size > 0
                )
            )
            assert max(latencies) < 1.0
            lag = submitter.lag()[signer.name]
            assert (lag.failures, lag.seconds, lag.last_error) == (0, 0.0, None)
            _, caught_up = await scrape_until(
                metrics,
                lambda s: value(s, "gateway_witness_lag_seconds", witness=signer.name) == 0,
            )
            assert (
                "gateway_witness_lag_seconds",
                frozenset({("witness", signer.name)}),
            ) in caught_up
            response = await gateway.client("audra").get("/v1/audit/checkpoint")
            assert response.status_code == 200
            text, lines = spec.note_text_and_lines(response.text)
            name, public = spec.public_key_of(signer.verifier.to_string())
            assert any(spec.cosignature_timestamp(text, line, name, public) for line in lines)
        # The gateway signed a final checkpoint as it stopped, and had it cosigned.
        code, out, err = run_cli(
            [
                "audit",
                "verify",
                "--store",
                str(gateway.audit_store),
                "--key",
                str(pki / "audit-signing.pub"),
                "--require-signed",
                "--witness",
                signer.verifier.to_string(),
                "--quorum",
                "1",
            ]
        )
        assert code == 0, out + err
        assert "cosigned by 1 of 1 listed witnesses" in out


async def test_a_witness_that_never_answers_costs_requests_nothing(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    signer = generate_cosigner("witness.agency.test/silent")
    overrides = {
        "audit_witnesses": [
            {"url": f"http://127.0.0.1:{port}/", "key": signer.verifier.to_string()}
        ],
        "audit_witness_retry_seconds": 0.05,
        "audit_witness_retry_max_seconds": 0.2,
        "audit_witness_timeout_seconds": 0.5,
    }
    try:
        async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as gateway:
            submitter = gateway.gateway.witnesses
            latencies = []
            deadline = time.monotonic() + 20
            while submitter.lag()[signer.name].failures < 2:
                assert time.monotonic() < deadline, "the witness was never given up on"
                latencies.append(await _ask(gateway))
            assert "Timeout" in (submitter.lag()[signer.name].last_error or "")
            assert max(latencies) < 1.0
            assert (await gateway.client(None).get("/readyz")).status_code == 200
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
