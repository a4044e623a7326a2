"""A gateway in its own process, for the crash test: `gateway serve --config FILE`.

The process runs on the real clock, as in production. It can be killed the way a
machine crashes (SIGKILL: no shutdown, no final checkpoint) or stopped the way an
orchestrator stops it (SIGTERM: graceful shutdown, final checkpoint). Its log lines go
to a file in the test's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_context(pki: Path, who: str | None) -> ssl.SSLContext:
    """A client TLS context trusting the gateway's CA, presenting `who`'s certificate."""
    context = ssl.create_default_context(cafile=str(pki / "corp-ca" / "ca.pem"))
    if who is not None:
        context.load_cert_chain(pki / f"{who}.pem", pki / f"{who}-key.pem")
    return context


class GatewayProcess:
    """One `gateway serve` process listening on 127.0.0.1:`port`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, output: Path) -> None:
        self.process = process
        self.base_url = f"https://127.0.0.1:{port}"
        self.output = output

    def kill(self) -> None:
        """Crash it: SIGKILL, then reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """Stop it cleanly (SIGTERM); returns its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output_tail(self, lines: int = 20) -> str:
        """The last log lines (the gateway logs no secrets, so they may go in a message)."""
        text = self.output.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def gateway_process(
    config: Path, port: int, pki: Path, *extra: str
) -> AsyncIterator[GatewayProcess]:
    """Start `gateway serve --config config [extra...]`; wait until /healthz answers."""
    output = config.with_name(f"gateway-{port}.log")
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), *extra],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        running = GatewayProcess(process, port, output)
        try:
            await _wait_until_healthy(running, pki)
            yield running
        finally:
            if process.poll() is None:
                running.kill()


async def _wait_until_healthy(running: GatewayProcess, pki: Path) -> None:
    async with httpx.AsyncClient(
        base_url=running.base_url, verify=client_context(pki, None), timeout=2
    ) as client:
        async with asyncio.timeout(_START_TIMEOUT):
            while True:
                if running.process.poll() is not None:
                    raise RuntimeError(
                        f"gateway exited with {running.process.returncode} before it served:\n"
                        + running.output_tail()
                    )
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.05)


async def load_until_killed(
    running: GatewayProcess,
    pki: Path,
    path: str,
    body: dict[str, Any],
    *,
    clients: int = 32,
    seconds: float = 2.0,
) -> tuple[dict[str, int], int]:
    """`clients` callers (alice) POST `body` to `path`; after `seconds` the gateway is killed.

    Each request carries its own x-request-id. Returns the status of every request that
    got a complete response, by request id, and how many requests the kill cut off.
    Raises AssertionError if a request failed in transport before the kill.
    """
    context = client_context(pki, "alice")
    answered: dict[str, int] = {}
    cut_off: list[str] = []
    early_errors: list[str] = []
    killed = asyncio.Event()

    async def caller(number: int) -> None:
        async with httpx.AsyncClient(base_url=running.base_url, verify=context, timeout=10) as http:
            for sequence in itertools.count():
                request_id = f"load-{number}-{sequence}"
                try:
                    response = await http.post(
                        path, json=body, headers={"x-request-id": request_id}
                    )
                except httpx.TransportError as exc:
                    # `kill` blocks the loop, so an error seen before `killed` is set is real.
                    (cut_off if killed.is_set() else early_errors).append(type(exc).__name__)
                    return
                assert response.headers["x-request-id"] == request_id
                answered[request_id] = response.status_code

    tasks = [asyncio.create_task(caller(n)) for n in range(clients)]
    await asyncio.sleep(seconds)
    running.kill()
    killed.set()
    await asyncio.gather(*tasks)
    assert early_errors == []
    return answered, len(cut_off)
