"""`gateway serve --workers N`: several processes on one listener and one audit log, a
crashed worker replaced, and a clean stop that leaves every record signed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.demo.upstream import create_app
from tests.e2e.audit_support import CHAT, chat
from tests.e2e.crash_gateway import client_context, free_port, gateway_process
from tests.harness import REPO, gateway_settings
from tests.servers import serve_asgi


async def _worker_pids(base_url: str, pki: Path, tries: int = 60) -> set[int]:
    """The pids that answer /readyz over fresh connections (each may land on any worker)."""
    pids: set[int] = set()
    for _ in range(tries):
        async with httpx.AsyncClient(
            base_url=base_url, verify=client_context(pki, None), timeout=5
        ) as client:
            response = await client.get("/readyz")
            assert response.status_code == 200, response.text
            pids.add(response.json()["worker"]["pid"])
    return pids


@pytest.mark.slow
async def test_workers_share_the_listener_replace_a_crash_and_sign_at_stop(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    async with serve_asgi(create_app()) as upstream:
        port = free_port()
        config = gateway_settings(tmp_path, pki, tmp_path / "policies", upstream, port=port)
        async with gateway_process(config, port, pki, "--workers", "2") as running:
            first = await _worker_pids(running.base_url, pki)
            assert len(first) == 2
            async with httpx.AsyncClient(
                base_url=running.base_url, verify=client_context(pki, "alice"), timeout=10
            ) as alice:
                answers = await asyncio.gather(*(alice.post(CHAT, json=chat()) for _ in range(40)))
                assert {response.status_code for response in answers} == {200}
                crashed = min(first)
                os.kill(crashed, signal.SIGKILL)
                async with asyncio.timeout(20):
                    while True:
                        now = await _worker_pids(running.base_url, pki, tries=10)
                        if crashed not in now and len(now) == 2:
                            break
                        await asyncio.sleep(0.2)
                again = await alice.post(CHAT, json=chat())
                assert again.status_code == 200
            assert running.stop() == 0
            log = running.output.read_text()
            assert '"event":"worker.exited"' in log
            assert '"exit_code":-9' in log
    code = main(
        ["audit", "verify", "--store", str(tmp_path / "audit" / "audit.db"),
         "--key", str(pki / "audit-signing.pub"), "--require-signed"]
    )  # fmt: skip
    output = capsys.readouterr().out
    assert code == 0, output
