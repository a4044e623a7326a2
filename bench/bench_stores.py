"""Append throughput into one log from 1, 2 and 4 writer processes, per store.

Each writer process runs an AuditLog with 128 concurrent appenders (each awaiting
durability: group commit, strict) for a fixed time after a common start; the total of
records acknowledged by all processes, divided by the time, is the store's append rate
at that many writers. SQLite: one file (WAL, synchronous=FULL). PostgreSQL: a private
schema in the server of GATEWAY_BENCH_POSTGRES (default postgresql://127.0.0.1:5432/test),
with synchronous_commit=on (its default, checked and printed).

Run: .venv/bin/python bench/bench_stores.py [--seconds 5] [--writers 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from bench_audit import ORIGIN, record, settings_in

from gateway.audit import AuditLog, generate_keys, parse_location

SERVER = os.environ.get("GATEWAY_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/test")
APPENDERS = 128


async def _write(store: str, keys: Path, seconds: float) -> int:
    """One writer process: wait for "go" on stdin, append for `seconds`, return the count."""
    import dataclasses

    settings = dataclasses.replace(
        settings_in(keys), store=parse_location(store), checkpoint_every_records=50_000
    )
    log = AuditLog(settings)
    await log.start()
    records = [record(n) for n in range(1000)]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    deadline = time.monotonic() + seconds
    count = 0

    async def appender(number: int) -> None:
        nonlocal count
        sequence = number
        while time.monotonic() < deadline:
            await log.append(records[sequence % 1000])
            count += 1
            sequence += APPENDERS

    await asyncio.gather(*(appender(n) for n in range(APPENDERS)))
    await log.stop()
    return count


def _run(store: str, keys: Path, writers: int, seconds: float) -> float:
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", store, str(keys), str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent,
        )
        for _ in range(writers)
    ]
    time.sleep(2.0)  # every writer has opened the store
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    total = 0
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        if process.returncode != 0:
            raise RuntimeError(f"a writer failed with {process.returncode}")
        total += int(out.strip().splitlines()[-1])
    return total / seconds


def _postgres_store() -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}".encode())
        setting = connection.execute("SHOW synchronous_commit").fetchone()
    separator = "&" if "?" in SERVER else "?"
    url = f"{SERVER}{separator}options={quote(f'-csearch_path={schema}')}"
    return url, f"synchronous_commit={setting[0] if setting else '?'}"


def _drop(url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", default="1,2,4")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        store, keys, seconds = options.child
        print(asyncio.run(_write(store, Path(keys), float(seconds))))
        return
    counts = [int(n) for n in options.writers.split(",")]
    with tempfile.TemporaryDirectory() as temporary:
        keys = Path(temporary) / "keys"
        generate_keys(keys, ORIGIN)
        for writers in counts:
            rate = _run(
                str(Path(temporary) / f"sqlite-{writers}.db"), keys, writers, options.seconds
            )
            print(
                f"append into SQLite (WAL, synchronous=FULL) from {writers} writer process(es):"
                f" {rate:,.0f} records/s",
                flush=True,
            )
        for writers in counts:
            url, setting = _postgres_store()
            try:
                rate = _run(url, keys, writers, options.seconds)
            finally:
                _drop(url)
            print(
                f"append into PostgreSQL ({setting}) from {writers} writer process(es):"
                f" {rate:,.0f} records/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
