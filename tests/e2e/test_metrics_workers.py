"""/metrics of `gateway serve --workers 2`: the supervisor serves the sum of its workers,
and a worker that dies keeps its counts but leaves the live gauges."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.demo.upstream import create_app
from tests.e2e.audit_support import CHAT, chat
from tests.e2e.crash_gateway import client_context, free_port, gateway_process
from tests.harness import REPO, gateway_settings
from tests.servers import serve_asgi
from tests.telemetry.samples import Samples, label_values, parse, total, value


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
    return found


def _versions(samples: Samples) -> set[str]:
    """The policy versions /metrics shows as series."""
    return label_values(samples, "gateway_policy_info", "version")


def _metric_directories() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("gateway-metrics-*"))


async def _scrape_until(url: str, ready: Callable[[Samples], bool]) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    samples = parse((await client.get(url)).text)
                    if ready(samples):
                        return samples
                await asyncio.sleep(0.2)


async def _chats(base_url: str, pki: Path, count: int) -> None:
    """`count` requests by alice, each on a new connection (whichever worker accepts it)."""
    for _ in range(count):
        async with httpx.AsyncClient(
            base_url=base_url, verify=client_context(pki, "alice"), timeout=10
        ) as alice:
            assert (await alice.post(CHAT, json=chat("muse-1"))).status_code == 200


async def _chats_on_each(base_url: str, pki: Path, workers: set[int], each: int) -> None:
    """`each` requests served by every worker: a connection's /readyz names its worker,
    and the request follows on the same connection."""
    served = dict.fromkeys(workers, 0)
    async with asyncio.timeout(60):
        while min(served.values()) < each:
            async with httpx.AsyncClient(
                base_url=base_url, verify=client_context(pki, "alice"), timeout=10
            ) as alice:
                worker = (await alice.get("/readyz")).json()["worker"]["pid"]
                if served[worker] < each:
                    assert (await alice.post(CHAT, json=chat("muse-1"))).status_code == 200
                    served[worker] += 1


@pytest.mark.slow
async def test_the_supervisor_serves_the_sum_of_its_workers(tmp_path: Path, pki: Path) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    metrics_port = free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    before = set(_metric_directories())
    async with serve_asgi(create_app()) as upstream:
        port = free_port()
        config = gateway_settings(
            tmp_path,
            pki,
            tmp_path / "policies",
            upstream,
            port=port,
            overrides={"metrics": {"listen": f"127.0.0.1:{metrics_port}"}},
        )
        async with gateway_process(config, port, pki, "--workers", "2") as running:
            await _scrape_until(url, lambda s: value(s, "gateway_processes") == 2)
            (private,) = set(_metric_directories()) - before
            assert private.stat().st_mode & 0o777 == 0o700
            assert {path.name.split("_")[0] for path in private.iterdir()} >= {"counter", "gauge"}
            workers = _workers(running.process.pid)
            assert len(workers) == 2
            await _chats_on_each(running.base_url, pki, workers, 6)
            # The supervisor may read one worker's files while that worker publishes
            # (requests first, then stages): wait until both are whole.
            samples = await _scrape_until(
                url,
                lambda s: (
                    total(s, "gateway_requests_total", route=CHAT) == 12
                    and value(s, "gateway_stage_duration_seconds_count", stage="total") == 12
                ),
            )
            assert total(samples, "gateway_requests_total", route=CHAT, status="200") == 12
            assert value(samples, "gateway_stage_duration_seconds_count", stage="total") == 12
            assert value(samples, "gateway_upstream_up", upstream="demo") == 1
            assert value(samples, "gateway_audit_store_readable") == 1

            # Policy changes: only the version in force is a series, however many passed.
            suspensions = tmp_path / "policies" / "suspensions.yaml"
            original = suspensions.read_text()
            seen: set[str] = set()
            for n in range(3):
                suspensions.write_text(
                    original + f"  - organisation: Reseller {n}\n    reason: review\n"
                    "    since: 2026-06-01T00:00:00Z\n"
                )
                known = frozenset(seen)
                changed = await _scrape_until(
                    url,
                    lambda s, known=known: bool(_versions(s) - known) and len(_versions(s)) == 1,  # type: ignore[misc]
                )
                seen |= _versions(changed)
            assert len(seen) == 3

            # A worker killed mid-run: its counts stay in the sum, its live gauges go,
            # and its replacement adds its own.
            os.kill(min(workers), signal.SIGKILL)
            await _scrape_until(
                url,
                lambda s: (
                    value(s, "gateway_processes") == 2
                    and len(_workers(running.process.pid) - workers) == 1
                ),
            )
            await _chats(running.base_url, pki, 3)
            after = await _scrape_until(
                url, lambda s: total(s, "gateway_requests_total", route=CHAT) == 15
            )
            assert value(after, "gateway_processes") == 2
            assert value(after, "gateway_audit_available") == 1
            assert running.stop() == 0
    assert not private.exists()  # the supervisor removed its workers' files
    # The supervisor's store reader closed before the workers: the last of them folded
    # the WAL into the file, which holds the whole log.
    assert not (tmp_path / "audit" / "audit.db-wal").exists()
