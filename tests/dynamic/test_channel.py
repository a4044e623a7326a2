"""The change channel between processes, over both stores: every announcement reaches every
other process, after its transaction commits, within a second (p99, measured), and a
listener that lost its connection is told to reload everything when it is back."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gateway.dynamic import Change, PostgresChannel, announce, ensure_schema
from tests.postgres import PostgresServer, private_schema

HELPER = Path(__file__).with_name("listener.py")
REPO = Path(__file__).parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    if request.param == "sqlite":
        yield tmp_path / "control.db"
    else:
        with private_schema() as url:
            yield url


def _announce(location: Path | str, topic: str, *, commit: bool = True) -> None:
    if isinstance(location, Path):
        connection = sqlite3.connect(location, isolation_level=None)
        try:
            ensure_schema(connection)
            connection.execute("BEGIN IMMEDIATE")
            announce(connection, topic)
            connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            connection.close()
    else:
        with (
            psycopg.connect(location, autocommit=True) as connection,
            connection.transaction(force_rollback=not commit),
        ):
            announce(connection, topic)


def _listeners(location: Path | str, count: int) -> list[subprocess.Popen[str]]:
    processes = [
        subprocess.Popen(
            [sys.executable, str(HELPER), str(location)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "listening"
    return processes


def test_every_process_hears_every_committed_change_within_a_second(
    location: Path | str,
) -> None:
    listeners = _listeners(location, 2)
    try:
        _announce(location, "rolled-back", commit=False)
        for number in range(40):
            _announce(location, f"suspensions-{number}")
            time.sleep(random.uniform(0.0, 0.05))
        time.sleep(1.0)
    finally:
        outputs = []
        for process in listeners:
            out, _ = process.communicate("stop\n", timeout=30)
            outputs.append(out.split("\n"))
    delays: list[float] = []
    for lines in outputs:
        heard = [line.split() for line in lines if line.strip()]
        assert [topic for topic, _ in heard] == [f"suspensions-{n}" for n in range(40)]
        delays.extend(float(delay) for _, delay in heard)
    p99 = statistics.quantiles(delays, n=100)[98]
    assert p99 <= 1.0, f"p99 propagation {p99:.3f} s"


@pytest.mark.slow
async def test_a_listener_that_lost_the_database_is_told_to_reload_everything() -> None:
    with PostgresServer() as server:
        heard: list[Change] = []
        channel = PostgresChannel(server.url)
        await channel.start(heard.append)
        async with asyncio.timeout(10):
            await channel.connected.wait()
        await asyncio.to_thread(_announce, server.url, "grants")
        server.stop("immediate")
        await asyncio.sleep(0.5)
        assert not channel.connected.is_set()
        server.start()
        async with asyncio.timeout(20):
            await channel.connected.wait()
            while not any(change.topic == "*" for change in heard):
                await asyncio.sleep(0.05)
        await asyncio.to_thread(_announce, server.url, "suspensions")
        async with asyncio.timeout(5):
            while heard[-1].topic != "suspensions":
                await asyncio.sleep(0.05)
        await channel.stop()
    assert [change.topic for change in heard] == ["grants", "*", "suspensions"]
