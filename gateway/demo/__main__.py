"""`make run`: the demo — the gateway on https://localhost:8443 (mTLS) in front of the
demo upstream, with dev certificates and keys generated under certs/dev/.

    python -m gateway.demo [--at 2027-01-05T12:00:00Z]

`--at` runs the gateway's clock from that instant (the demo only; `gateway serve` always
uses the real clock), so the pre-release grant window can be tried before it opens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn

from gateway.demo.material import ensure_material
from gateway.demo.walkthrough import walkthrough
from gateway.logs import configure_logging
from gateway.server import uvicorn_config
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"demo: nothing answered on 127.0.0.1:{port}")


def _clock(at: str | None) -> Callable[[], float]:
    if at is None:
        return time.time
    start = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    origin = time.time()
    return lambda: start + (time.time() - origin)


async def _serve(server: uvicorn.Server, banner: str) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn offers only a flag
        await asyncio.sleep(0.05)
    if server.started:
        print(banner, flush=True)
    await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.demo")
    parser.add_argument("--at", help="run the gateway's clock from this instant (ISO 8601)")
    parser.add_argument("--config", default=str(ROOT / "deploy" / "gateway.yaml"))
    args = parser.parse_args(argv)

    certs = ensure_material(ROOT / "certs" / "dev")
    (ROOT / "var").mkdir(exist_ok=True)
    settings = load_settings(Path(args.config))
    env = dict(os.environ)
    env["DEMO_UPSTREAM_KEY"] = (certs / "upstream.key").read_text(encoding="utf-8").strip()
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.demo.upstream",
            "--host",
            "127.0.0.1",
            "--port",
            "9000",
            "--api-key-env",
            "DEMO_UPSTREAM_KEY",
        ],
        env=env,
    )
    try:
        _wait_for_port(9000)
        configure_logging(settings.log_level)
        config = uvicorn_config(settings, clock=_clock(args.at))
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
            asyncio.run(_serve(server, walkthrough(ROOT, settings.port, args.at)))
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
