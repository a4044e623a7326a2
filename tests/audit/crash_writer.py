"""Helper for the crash test: append from many tasks, print each index once durable.

Usage: python crash_writer.py STORE SIGNING_KEY HMAC_KEY ORIGIN
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.audit import AuditLog, AuditSettings


async def main(store: str, signing_key: str, hmac_key: str, origin: str) -> None:
    settings = AuditSettings(
        store=Path(store),
        origin=origin,
        signing_key=Path(signing_key),
        hmac_key=Path(hmac_key),
        checkpoint_every_records=50,
        batch_max=16,
    )
    log = AuditLog(settings)
    await log.start()

    async def worker(number: int) -> None:
        sequence = 0
        while True:
            record = {
                "kind": "request",
                "time": "2026-11-27T06:10:25.123456Z",
                "request_id": f"w{number}-{sequence}",
                "decision": "allow",
            }
            index = await log.append(record)
            sys.stdout.write(f"{index}\n")
            sys.stdout.flush()
            sequence += 1

    await asyncio.gather(*(worker(n) for n in range(32)))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
