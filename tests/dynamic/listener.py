"""A listening process for the channel tests: prints "<topic> <delay seconds>" for each
change it hears, after "listening" once it is ready.

Usage: python listener.py LOCATION
"""

from __future__ import annotations

import asyncio
import sys
import time

from gateway.audit import parse_location
from gateway.dynamic import Change, open_channel


async def main(location: str) -> None:
    channel = open_channel(parse_location(location))

    def heard(change: Change) -> None:
        print(f"{change.topic} {time.time() - change.sent_at:.6f}", flush=True)

    await channel.start(heard)
    await channel.connected.wait()
    print("listening", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await channel.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
