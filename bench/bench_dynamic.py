"""Run-time policy changes (the admin API) against a full policy load, with 10,000 grants.

- full load: `load_policy` of the example policy scaled to N file grants (what a file edit
  costs: every grant parsed, validated and indexed, the version hashed);
- incremental: with those N file grants, and again with N grants added at run time,
  adding a suspension, adding a grant and revoking a grant through `LiveControl` (what an
  admin API call costs the gateway that receives it: the object validated, stored in the
  shared SQLite store with its announcement, and the effective policy rebuilt).

Run: .venv/bin/python bench/bench_dynamic.py [--grants 10000] [--large 100000]
Target: a run-time change takes effect in <= 50 ms with 10,000 grants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_policy import RELEASE, _instant, write_scaled_policy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.dynamic import ControlStore, LiveControl, SQLiteChannel
from gateway.dynamic.store import digest_of
from gateway.logs import get_logger
from gateway.policy import Grant, PolicyHolder, load_policy, sign_grant
from gateway.policy._approvers import encode_signature
from gateway.policy.approver_keys import public_key_text

RUNS = 5


def full_load(directory: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        load_policy(directory)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


_KEYS = {key_id: Ed25519PrivateKey.generate() for key_id in ("bench-signer-1", "bench-signer-2")}


def _approvers(directory: Path) -> None:
    """List the bench's approver keys in the policy, so run-time grants can be signed."""
    lines = ["approvers:"]
    for key_id, key in _KEYS.items():
        lines += [
            f"  - id: {key_id}",
            "    organisation: Example AI Labs",
            f"    public_key: {public_key_text(key)}",
        ]
    (directory / "approvers-bench.yaml").write_text("\n".join(lines) + "\n")


def _grant(number: int) -> dict[str, Any]:
    """A run-time grant as posted to the admin API, signed by both bench approvers."""
    opens = RELEASE.replace(day=1)
    grant = Grant(
        id=f"runtime-{number:06d}",
        organisation=f"Organisation {number % 100}",
        subjects=frozenset(),
        models=("model-000",),
        not_before=opens,
        not_after=opens.replace(day=10),
        purpose="run-time evaluation",
    )
    return {
        "id": grant.id,
        "grantee": {"organisation": grant.organisation},
        "models": list(grant.models),
        "not_before": _instant(grant.not_before),
        "not_after": _instant(grant.not_after),
        "purpose": grant.purpose,
        "signatures": [
            {
                "key_id": key_id,
                "signature": encode_signature(sign_grant(grant, key_id, key).signature),
            }
            for key_id, key in _KEYS.items()
        ],
    }


def _preload(store: Path, count: int) -> None:
    """`count` run-time grants written straight into the shared store, in one transaction."""
    ControlStore(store).close()
    connection = sqlite3.connect(store)
    with connection:
        for number in range(count):
            body = json.dumps(_grant(number), sort_keys=True, separators=(",", ":"))
            connection.execute(
                "INSERT INTO control_objects VALUES (?, 'grant', ?, ?, 0, 'bench')",
                (f"grant:runtime-{number:06d}", body, digest_of(body)),
            )
    connection.close()


async def incremental(directory: Path, store: Path, preload: int) -> dict[str, float]:
    holder = PolicyHolder(load_policy(directory))
    _preload(store, preload)
    control = LiveControl(ControlStore(store), SQLiteChannel(store), holder, logger=get_logger())
    started = time.perf_counter()
    await control.start()  # parses every run-time object once
    start_seconds = time.perf_counter() - started
    results: dict[str, list[float]] = {"suspension": [], "grant": [], "revocation": []}
    for run in range(RUNS):
        started = time.perf_counter()
        await control.add_suspension(
            {
                "organisation": f"Organisation {run}",
                "reason": "bench",
                "since": "2026-01-01T00:00:00Z",
            },
            "bench",
        )
        results["suspension"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await control.add_grant(_grant(900_000 + run), "bench")
        results["grant"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await control.revoke_grant(f"grant-{run:06d}", "bench")
        results["revocation"].append(time.perf_counter() - started)
    await control.stop()
    medians = {name: statistics.median(times) for name, times in results.items()}
    return {**medians, "start (parse all)": start_seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=0, help="also a full load of this many")
    options = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        directory = root / "policy"
        write_scaled_policy(directory, rng, grants=options.grants)
        _approvers(directory)
        print(
            f"policy full load, {options.grants:,} file grants:"
            f" median {full_load(directory, 3) * 1000:,.0f} ms",
            flush=True,
        )
        if options.large:
            large = root / "large"
            write_scaled_policy(large, rng, grants=options.large)
            print(
                f"policy full load, {options.large:,} file grants:"
                f" {full_load(large, 1) * 1000:,.0f} ms",
                flush=True,
            )
        for preload, label in ((0, "file grants"), (options.grants, "file + run-time grants")):
            times = asyncio.run(incremental(directory, root / f"control-{preload}.db", preload))
            print(
                f"run-time change with {options.grants:,} {label}"
                + (f" ({preload:,} run-time)" if preload else "")
                + ": "
                + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in times.items())
                + " (medians; stored, announced and applied)",
                flush=True,
            )


if __name__ == "__main__":
    main()
