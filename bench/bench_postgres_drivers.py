"""psycopg 3 against asyncpg on the PostgreSQL store's append transaction.

The transaction the store runs per batch: lock the tree-head row (SELECT ... FOR UPDATE),
insert the batch's records (about 900 bytes of record and its columns each), update the
head, commit (synchronous_commit=on). Both drivers run it back to back from one process
for a fixed time at batch sizes 1, 16 and 128; reported: records/s and CPU microseconds
of the client process per record (what the gateway's core pays).

Run: .venv/bin/python bench/bench_postgres_drivers.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Callable

import asyncpg
import psycopg

SERVER = os.environ.get("GATEWAY_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/test")
DATA = b'{"kind":"request","principal":{"subject":"evaluator"}}' + b"x" * 850
ROW = (DATA, b"h" * 32, 1_764_000_000_000_000, "request", "req", "sub", "org", "model", "allow")
SCHEMA = """
CREATE TABLE {s}.head (id INT PRIMARY KEY, size BIGINT NOT NULL);
INSERT INTO {s}.head VALUES (1, 0);
CREATE TABLE {s}.records (leaf_index BIGINT PRIMARY KEY, data BYTEA, leaf_hash BYTEA,
  time_us BIGINT, kind TEXT, request_id TEXT, subject TEXT, organisation TEXT, model TEXT,
  decision TEXT);
CREATE INDEX ON {s}.records (time_us);
CREATE INDEX ON {s}.records (request_id);
"""
COLUMNS = [
    "leaf_index", "data", "leaf_hash", "time_us", "kind", "request_id", "subject",
    "organisation", "model", "decision",
]  # fmt: skip


def _measure(run: Callable[[], int], seconds: float) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    count = 0
    while time.perf_counter() - wall < seconds:
        count += run()
    elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
    return count / elapsed, used / count * 1e6


def psycopg_run(schema: str, batch: int, seconds: float) -> tuple[float, float]:
    with psycopg.connect(SERVER, autocommit=True) as connection:

        def once() -> int:
            with connection.transaction():
                size = connection.execute(
                    f"SELECT size FROM {schema}.head WHERE id = 1 FOR UPDATE".encode()
                ).fetchone()[0]  # type: ignore[index]
                with connection.cursor().copy(
                    f"COPY {schema}.records ({', '.join(COLUMNS)}) FROM STDIN".encode()
                ) as copy:
                    for offset in range(batch):
                        copy.write_row((size + offset, *ROW))
                connection.execute(
                    f"UPDATE {schema}.head SET size = %s WHERE id = 1".encode(), (size + batch,)
                )
            return batch

        return _measure(once, seconds)


async def asyncpg_run(schema: str, batch: int, seconds: float) -> tuple[float, float]:
    connection = await asyncpg.connect(SERVER)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        count = 0
        while time.perf_counter() - wall < seconds:
            async with connection.transaction():
                size = await connection.fetchval(
                    f"SELECT size FROM {schema}.head WHERE id = 1 FOR UPDATE"
                )
                await connection.copy_records_to_table(
                    "records",
                    schema_name=schema,
                    columns=COLUMNS,
                    records=[(size + offset, *ROW) for offset in range(batch)],
                )
                await connection.execute(
                    f"UPDATE {schema}.head SET size = $1 WHERE id = 1", size + batch
                )
            count += batch
        elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
        return count / elapsed, used / count * 1e6
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    for batch in (1, 16, 128):
        for name in ("psycopg", "asyncpg"):
            schema = f"drivers_{secrets.token_hex(4)}"
            with psycopg.connect(SERVER, autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {schema}".encode())
                for statement in SCHEMA.format(s=schema).split(";"):
                    if statement.strip():
                        connection.execute(statement.encode())
            try:
                if name == "psycopg":
                    rate, cpu = psycopg_run(schema, batch, options.seconds)
                else:
                    rate, cpu = asyncio.run(asyncpg_run(schema, batch, options.seconds))
            finally:
                with psycopg.connect(SERVER, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA {schema} CASCADE".encode())
            print(
                f"{name:8} batch {batch:>3}: {rate:>9,.0f} records/s,"
                f" {cpu:6.1f} us client CPU per record",
                flush=True,
            )


if __name__ == "__main__":
    main()
