"""Audit log throughput: group-committed appends/s and offline `verify` records/s.

Also the per-record cost of the two canonical-JSON steps behind them: preparing a
record on the event loop (validate + canonicalise) and the verifier's check (parse +
re-canonicalise + compare).

Run: .venv/bin/python bench/bench_audit.py   (prints medians of 3 runs)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.audit import AuditLog, AuditSettings, SQLiteAuditStore, generate_keys, load_verifier
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE, VERIFIER_KEY_FILE
from gateway.audit.records import prepare_record
from gateway.audit.verify import check_record, verify_store

ORIGIN = "bench.example/audit"
APPENDERS = 256
APPEND_RECORDS = 30_000
VERIFY_RECORDS = 100_000
STEP_RECORDS = 20_000
RUNS = 3


def record(number: int) -> dict[str, Any]:
    """A realistic request record: about 40 fields counting nested ones."""
    return {
        "kind": "request",
        "time": "2026-11-27T06:10:25.123456Z",
        "request_id": f"01J{number:020d}",
        "principal": {
            "subject": f"evaluator-{number % 50}@caisi.example",
            "issuer": "https://login.caisi.example",
            "organisation": "caisi",
            "roles": ["evaluator", "red-team"],
            "nationalities": [{"value": "US", "source": "oidc:caisi"}],
            "residences": [{"value": "US", "source": "oidc:caisi"}],
            "auth_methods": ["mtls", "oidc"],
            "certificate_fingerprint": "sha256:" + "ab" * 32,
        },
        "model": "frontier-2-preview",
        "route": "/v1/chat/completions",
        "decision": "allow" if number % 5 else "deny",
        "reason": "grant.active" if number % 5 else "nationality.denied",
        "rules": ["class:frontier", "grant:caisi-preview"],
        "grant_id": "caisi-preview-2026-11",
        "policy_version": "sha256:" + "cd" * 32,
        "client_address": "10.0.0.17",
        "request_digest": "hmac-sha256:" + "ef" * 32,
        "response_digest": None,
        "upstream_status": None,
        "usage": None,
        "latency_us": 1234 + number % 100,
        "request_bytes": 2048,
        "response_bytes": 0,
        "stream": None,
        "status": 200,
        "request_index": None,
    }


def settings_in(directory: Path) -> AuditSettings:
    return AuditSettings(
        store=directory / "audit.db",
        origin=ORIGIN,
        signing_key=directory / SIGNING_KEY_FILE,
        hmac_key=directory / HMAC_KEY_FILE,
        checkpoint_every_records=10_000,
        checkpoint_every_seconds=10.0,
        batch_max=512,
    )


async def append_run(settings: AuditSettings, count: int) -> float:
    """Records/s appended by APPENDERS concurrent tasks, each awaiting durability."""
    log = AuditLog(settings)
    await log.start()
    records = [record(n) for n in range(count)]
    per_task = count // APPENDERS

    async def appender(offset: int) -> None:
        for number in range(offset * per_task, (offset + 1) * per_task):
            await log.append(records[number])

    started = time.perf_counter_ns()
    await asyncio.gather(*(appender(n) for n in range(APPENDERS)))
    elapsed = time.perf_counter_ns() - started
    await log.stop()
    return per_task * APPENDERS / (elapsed / 1e9)


def verify_run(settings: AuditSettings, directory: Path) -> tuple[float, int]:
    verifier = load_verifier(directory / VERIFIER_KEY_FILE)
    store = SQLiteAuditStore(settings.store, readonly=True)
    try:
        started = time.perf_counter_ns()
        result = verify_store(store, verifier)
        elapsed = time.perf_counter_ns() - started
    finally:
        store.close()
    return result.tree_size / (elapsed / 1e9), result.tree_size


def step_medians() -> tuple[float, float]:
    """Median microseconds per record of prepare_record and of check_record."""
    records = [record(n) for n in range(STEP_RECORDS)]
    prepare_times: list[int] = []
    check_times: list[int] = []
    for index, value in enumerate(records):
        started = time.perf_counter_ns()
        prepared = prepare_record(value)
        prepare_times.append(time.perf_counter_ns() - started)
        data = prepared.with_index(index)
        started = time.perf_counter_ns()
        check_record(data, index)
        check_times.append(time.perf_counter_ns() - started)
    return statistics.median(prepare_times) / 1e3, statistics.median(check_times) / 1e3


def main() -> None:
    prepare_us, check_us = step_medians()
    print(
        f"audit record steps: prepare (validate + canonicalise) median {prepare_us:.1f} us,"
        f" verify check (parse + re-canonicalise) median {check_us:.1f} us"
        f" over {STEP_RECORDS:,} records"
    )
    append_rates: list[float] = []
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for run in range(RUNS):
            directory = root / f"append-{run}"
            generate_keys(directory, ORIGIN)
            append_rates.append(asyncio.run(append_run(settings_in(directory), APPEND_RECORDS)))
        print(
            f"audit append (group commit, {APPENDERS} appenders, WAL FULL):"
            f" median {statistics.median(append_rates):,.0f} records/s"
            f" over {RUNS} runs of {APPEND_RECORDS:,}"
        )
        sys.stdout.flush()
        directory = root / "verify"
        generate_keys(directory, ORIGIN)
        settings = settings_in(directory)
        asyncio.run(append_run(settings, VERIFY_RECORDS))
        verify_rates = [verify_run(settings, directory) for _ in range(RUNS)]
        size = verify_rates[0][1]
        print(
            f"audit verify (full: canonical form, leaf hashes, checkpoints):"
            f" median {statistics.median(rate for rate, _ in verify_rates):,.0f} records/s"
            f" over {RUNS} runs of {size:,}"
        )


if __name__ == "__main__":
    main()
