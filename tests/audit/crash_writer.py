"""Helper for the crash and many-writer tests: append from many tasks in one process,
print "INDEX REQUEST_ID" once each is durable.

Usage: python crash_writer.py STORE SIGNING_KEY HMAC_KEY ORIGIN [COUNT [LABEL]]

STORE is a SQLite path or a PostgreSQL URL. Without COUNT it appends until killed; with
it, it appends COUNT records and stops cleanly (signing a final checkpoint).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.audit import AuditLog, AuditSettings, parse_location


async def main(
    store: str, signing_key: str, hmac_key: str, origin: str, count: str = "0", label: str = "w"
) -> None:
    settings = AuditSettings(
        store=parse_location(store),
        origin=origin,
        signing_key=Path(signing_key),
        hmac_key=Path(hmac_key),
        checkpoint_every_records=50,
        batch_max=16,
    )
    log = AuditLog(settings)
    await log.start()

    remaining = int(count) or -1

    async def worker(number: int) -> None:
        nonlocal remaining
        sequence = 0
        while remaining != 0:
            remaining -= 1
            request_id = f"{label}{number}-{sequence}"
            record = {
                "kind": "request",
                "time": "2026-11-27T06:10:25.123456Z",
                "request_id": request_id,
                "decision": "allow",
            }
            index = await log.append(record)
            sys.stdout.write(f"{index} {request_id}\n")
            sys.stdout.flush()
            sequence += 1

    await asyncio.gather(*(worker(n) for n in range(32)))
    await log.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
