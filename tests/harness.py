"""A whole gateway on real sockets for end-to-end tests.

The gateway is built by the same `uvicorn_config` that `gateway serve` uses, serves
HTTPS with mTLS on 127.0.0.1, and forwards to an in-process demo upstream (a real
server on its own port). Its clock is a `Clock` the test moves; certificates, keys and
the audit store live in the test's temporary folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from gateway.demo.material import ORIGIN, ensure_material
from gateway.demo.upstream import DemoUpstream, create_app
from gateway.server import uvicorn_config
from gateway.settings import load_settings
from tests.servers import PromptServer, serve_asgi

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_KEY = "sk-upstream-test-credential"


def instant(text: str) -> float:
    """Epoch seconds of an ISO 8601 instant ("2027-01-05T12:00:00Z")."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Clock:
    """The gateway's clock in a test: it stands still until the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, text: str) -> None:
        self.now = instant(text)


@dataclass
class RunningGateway:
    base_url: str
    folder: Path
    pki: Path
    policy_directory: Path
    audit_store: Path
    upstream: DemoUpstream
    clock: Clock
    server: uvicorn.Server
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def ssl_context(self, who: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "corp-ca" / "ca.pem"))
        if who is not None:
            context.load_cert_chain(self.pki / f"{who}.pem", self.pki / f"{who}-key.pem")
        return context

    def client(self, who: str | None, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTPS client presenting `who`'s certificate (None: no certificate)."""
        client = httpx.AsyncClient(
            base_url=self.base_url, verify=self.ssl_context(who), timeout=10, **kwargs
        )
        self.clients.append(client)
        return client

    @property
    def gateway(self) -> Any:
        """The running `Gateway` (its audit log, live policy, ...)."""
        return self.server.config.app.gateway


def gateway_settings(
    folder: Path,
    pki: Path,
    policy_directory: Path,
    upstream_url: str,
    *,
    port: int,
    identity: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write a settings file for a test gateway; returns its path."""
    (folder / "upstream.key").write_text(UPSTREAM_KEY + "\n")
    settings: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "tls": {
            "certificate": str(pki / "server.pem"),
            "private_key": str(pki / "server-key.pem"),
            "client_certificates": "optional",
        },
        "identity": identity
        or {
            "certificate_authorities": [
                {"id": "agency", "bundle": str(pki / "agency-ca" / "ca.pem")},
                {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
            ]
        },
        "upstreams": [
            {
                "name": "demo",
                "base_url": upstream_url + "/v1",
                "credential": {"file": str(folder / "upstream.key")},
                "connect_timeout": 1,
                "read_timeout": 2,
                "pool_size": 64,
            }
        ],
        "models": [
            {"id": "muse-spark-2", "upstream": "demo"},
            {"id": "muse-1", "upstream": "demo", "upstream_model": "demo-muse-1"},
        ],
        "limits": {"max_body_bytes": 65536},
        "policy": {"directory": str(policy_directory), "watch": True},
        "audit": {
            "store": str(folder / "audit" / "audit.db"),
            "origin": ORIGIN,
            "signing_key": str(pki / "audit-signing.key"),
            "hmac_key": str(pki / "audit-hmac.key"),
            "checkpoint_every_records": 50,
            "checkpoint_every_seconds": 1,
        },
    }
    for key, value in (overrides or {}).items():
        if key.startswith("audit_"):  # one key of the audit section, e.g. audit_store
            settings["audit"][key.removeprefix("audit_")] = value
        else:
            settings[key] = value
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def make_pki(root: Path) -> Path:
    """The demo's identities and keys, made once per test session, valid from 2026 on."""
    return ensure_material(root, not_before=datetime(2026, 1, 1, tzinfo=UTC))


@contextlib.asynccontextmanager
async def running_gateway(
    folder: Path,
    pki: Path,
    *,
    clock: Clock,
    upstream: DemoUpstream | None = None,
    upstream_url: str | None = None,
    identity: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> AsyncIterator[RunningGateway]:
    """Start the demo upstream and a gateway in front of it; stop both afterwards."""
    policy_directory = folder / "policies"
    if not policy_directory.exists():
        shutil.copytree(REPO / "policies", policy_directory)
    demo = upstream if upstream is not None else create_app()
    async with contextlib.AsyncExitStack() as stack:
        if upstream_url is None:
            upstream_url = await stack.enter_async_context(serve_asgi(demo))
        sock = socket.socket()
        stack.callback(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        path = gateway_settings(
            folder,
            pki,
            policy_directory,
            upstream_url,
            port=port,
            identity=identity,
            overrides=overrides,
        )
        settings = load_settings(path)
        config = uvicorn_config(settings, clock=clock)
        server = PromptServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(15):
                while not server.started:
                    if task.done():
                        task.result()
                        raise RuntimeError("the gateway stopped before it started")
                    await asyncio.sleep(0.01)
            running = RunningGateway(
                base_url=f"https://localhost:{port}",
                folder=folder,
                pki=pki,
                policy_directory=policy_directory,
                audit_store=folder / "audit" / "audit.db",
                upstream=demo,
                clock=clock,
                server=server,
            )
            try:
                yield running
            finally:
                for client in running.clients:
                    await client.aclose()
        finally:
            server.should_exit = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await task
