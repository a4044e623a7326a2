"""`make run`: the demo — the gateway on https://localhost:8443 (mTLS) in front of the
demo upstream, with dev certificates and keys generated under certs/dev/.

    python -m gateway.demo [AT]          make run [AT=2027-01-05T12:00:00Z]

AT runs the gateway's clock from that instant (the demo only; `gateway serve` always
uses the real clock), so the pre-release grant window can be tried before it opens.
Such a run writes an audit store of its own (see `gateway.demo.clock`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import uvicorn

from gateway.arguments import existing_file, instant
from gateway.audit.keys import VERIFIER_KEY_FILE
from gateway.config import ConfigError
from gateway.demo.clock import DemoError, check_material, check_store_key, demo_clock
from gateway.demo.material import ensure_material
from gateway.demo.walkthrough import walkthrough
from gateway.logs import configure_logging
from gateway.policy import PolicyError
from gateway.proxy._assertion import PUBLIC_KEY_FILE
from gateway.server import uvicorn_config
from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"demo: nothing answered on 127.0.0.1:{port}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _serve(server: uvicorn.Server, banner: str) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn offers only a flag
        await asyncio.sleep(0.05)
    if server.started:
        print(banner, flush=True)
    await task


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m gateway.demo` (what `make run` runs)."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.demo",
        description="The demo behind `make run` (`make run AT=TIME` runs it with AT).",
    )
    # A positional named AT, so that a refusal names what `make run AT=...` was given.
    parser.add_argument(
        "at",
        nargs="?",
        type=instant(zone_required=True),
        metavar="AT",
        help="run the gateway's clock from AT: ISO 8601 with a zone, e.g. "
        "2027-01-05T12:00:00Z, a date, or relative (now, tomorrow, -1d, +2w); "
        "put -- before an offset such as -1d",
    )
    parser.add_argument(
        "--config",
        type=existing_file,
        default=ROOT / "deploy" / "gateway.yaml",
        metavar="FILE",
        help="the settings file (default: deploy/gateway.yaml)",
    )
    return parser


def _assertion_arguments(settings: Settings, certs: Path, offset: float) -> list[str]:
    """Make the demo upstream verify the gateway's identity assertion when it sends one."""
    upstream = next((u for u in settings.upstreams if u.name == "demo"), None)
    if upstream is None or not upstream.identity_assertion:
        return []
    return [
        "--assertion-audience",
        upstream.name,
        "--assertion-jwks",
        str(certs / PUBLIC_KEY_FILE),
        "--clock-offset",
        f"{offset:.6f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    certs = ensure_material(ROOT / "certs" / "dev")
    try:
        settings = load_settings(args.config)
        if not isinstance(settings.audit.store, Path):
            raise DemoError("the demo's audit store is a SQLite file, not a database URL")
        clock = demo_clock(settings.audit.store, args.at)
        check_material(certs, clock.start, args.at is not None)
        check_store_key(clock.store, certs / VERIFIER_KEY_FILE)
    except (ConfigError, DemoError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    for port in (9000, settings.port):
        if _listening(port):
            print(
                f"demo: something already listens on 127.0.0.1:{port} (another demo?); "
                "stop it first",
                file=sys.stderr,
            )
            return 2
    if clock.note is not None:
        print(f"demo: {clock.note}", flush=True)
    settings = dataclasses.replace(
        settings, audit=dataclasses.replace(settings.audit, store=clock.store)
    )
    env = dict(os.environ)
    env["DEMO_UPSTREAM_KEY"] = (certs / "upstream.key").read_text(encoding="utf-8").strip()
    upstream = subprocess.Popen(  # noqa: S603 - our interpreter and module, our arguments
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
            *_assertion_arguments(settings, certs, clock.read() - time.time()),
        ],
        env=env,
    )
    try:
        _wait_for_port(9000)
        configure_logging(settings.log_level)
        try:
            config = uvicorn_config(settings, clock=clock.read)
        except (ConfigError, PolicyError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        server = uvicorn.Server(config)
        banner = walkthrough(
            settings.port,
            clock.start if args.at is not None else None,
            clock.store.relative_to(ROOT) if clock.store.is_relative_to(ROOT) else clock.store,
        )
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
            asyncio.run(_serve(server, banner))
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
