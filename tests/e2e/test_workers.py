"""`gateway serve --workers N`: several processes on one listener and one audit log, a
crashed worker replaced, and a clean stop that leaves every record signed."""

from __future__ import annotations

import asyncio
import contextlib
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


def _children(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
    return found


async def _served_by(base_url: str, pki: Path) -> int:
    """The pid of the worker that answers /readyz on a fresh connection."""
    async with httpx.AsyncClient(
        base_url=base_url, verify=client_context(pki, None), timeout=10
    ) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        pid: int = response.json()["worker"]["pid"]
        return pid


async def _workers(process_pid: int, count: int) -> set[int]:
    """The supervisor's worker processes, once there are `count` of them."""
    async with asyncio.timeout(30):
        while len(children := _children(process_pid)) != count:
            await asyncio.sleep(0.1)
    return children


async def _each_serves(base_url: str, pki: Path, workers: set[int]) -> None:
    """Stop all workers but one in turn: the one left must take every connection."""
    for serving in workers:
        others = workers - {serving}
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert {await _served_by(base_url, pki) for _ in range(3)} == {serving}
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
async def test_workers_share_the_listener_replace_a_crash_and_sign_at_stop(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    async with serve_asgi(create_app()) as upstream:
        port = free_port()
        config = gateway_settings(tmp_path, pki, tmp_path / "policies", upstream, port=port)
        async with gateway_process(config, port, pki, "--workers", "2") as running:
            first = await _workers(running.process.pid, 2)
            await _each_serves(running.base_url, pki, first)
            async with httpx.AsyncClient(
                base_url=running.base_url, verify=client_context(pki, "alice"), timeout=10
            ) as alice:
                answers = await asyncio.gather(*(alice.post(CHAT, json=chat()) for _ in range(40)))
                assert {response.status_code for response in answers} == {200}
                crashed = min(first)
                os.kill(crashed, signal.SIGKILL)
                async with asyncio.timeout(30):
                    while True:
                        now = _children(running.process.pid)
                        if crashed not in now and len(now) == 2:
                            break
                        await asyncio.sleep(0.2)
                replaced = await _workers(running.process.pid, 2)
                async with asyncio.timeout(30):
                    while True:  # the replacement serves once its gateway has started
                        with contextlib.suppress(AssertionError, httpx.TransportError):
                            await _each_serves(running.base_url, pki, replaced)
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


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
async def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    async with serve_asgi(create_app()) as upstream:
        port = free_port()
        config = gateway_settings(tmp_path, pki, tmp_path / "policies", upstream, port=port)
        async with gateway_process(config, port, pki, "--workers", "2") as running:
            workers = await _workers(running.process.pid, 2)
            async with httpx.AsyncClient(
                base_url=running.base_url, verify=client_context(pki, "alice"), timeout=10
            ) as alice:
                assert (await alice.post(CHAT, json=chat())).status_code == 200
            running.process.send_signal(signal.SIGKILL)
            running.process.wait()
            try:
                async with asyncio.timeout(20):
                    while any(_alive(pid) for pid in workers):
                        await asyncio.sleep(0.1)
            finally:
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            log = running.output.read_text()
    assert log.count('"event":"worker.orphaned"') == 2, log
    # Each stopped as on SIGTERM: the log is whole and signed to its last record.
    code = main(
        ["audit", "verify", "--store", str(tmp_path / "audit" / "audit.db"),
         "--key", str(pki / "audit-signing.pub"), "--require-signed"]
    )  # fmt: skip
    output = capsys.readouterr().out
    assert code == 0, output
