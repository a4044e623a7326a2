"""Refused TLS handshakes: the protocol runs the handshake itself and reports failures.

Over real sockets, under both event loops the gateway can run on (asyncio in tests,
uvloop under `gateway serve`); and the limiter that caps how many are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop

from gateway.config import Section
from gateway.identity import (
    HandshakeFailure,
    HandshakeFailureLimiter,
    SuppressedFailures,
    TlsHttpProtocol,
    TlsSettings,
    build_server_ssl_context,
)
from tests.identity.conftest import Pki, identity_settings
from tests.servers import PromptServer


def _context(pki: Pki, client_certificates: str = "required") -> ssl.SSLContext:
    tls = TlsSettings.from_section(
        Section(
            {
                "certificate": str(pki.server),
                "private_key": str(pki.server_key),
                "client_certificates": client_certificates,
            },
            "test.yaml",
            "tls",
        )
    )
    identity = identity_settings(
        {"certificate_authorities": [{"id": "agency", "bundle": str(pki.agency)}]}
    )
    return build_server_ssl_context(tls, identity)


async def _echo_chain(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain", [])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{len(chain)} {scope['scheme']}".encode()})


@contextlib.asynccontextmanager
async def _serving(
    pki: Pki, failures: list[HandshakeFailure], timeout: float = 10.0
) -> AsyncIterator[int]:
    """A plain TCP uvicorn server whose protocol terminates TLS itself; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    protocol = TlsHttpProtocol.terminating(_context(pki), failures.append, timeout)
    config = uvicorn.Config(
        _echo_chain, http=protocol, lifespan="off", ws="none", log_config=None, access_log=False
    )
    server = PromptServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


def _client(pki: Pki, certificate: Path | None, key: Path | None = None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(pki.agency))
    if certificate is not None:
        assert key is not None
        context.load_cert_chain(str(certificate), str(key))
    return httpx.AsyncClient(verify=context, timeout=5)


async def _scenario(pki: Pki) -> tuple[list[str], list[HandshakeFailure]]:
    failures: list[HandshakeFailure] = []
    seen: list[str] = []
    async with _serving(pki, failures, timeout=0.5) as port:
        url = f"https://127.0.0.1:{port}/"
        async with _client(pki, pki.alice, pki.alice_key) as alice:
            seen += [(await alice.get(url)).text, (await alice.get(url)).text]
        async with _client(pki, None) as anonymous:
            seen.append((await anonymous.get(url)).text)
        seen.append(await _request_at_once(pki, port))
        for certificate in (pki.mallory, pki.expired):
            async with _client(
                pki, certificate, certificate.with_name(f"{certificate.stem}-key.pem")
            ) as c:
                with pytest.raises(httpx.TransportError):
                    await c.get(url)
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get(f"http://127.0.0.1:{port}/")
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
        await asyncio.sleep(1.0)
        writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()  # connected and left: no handshake, nothing refused
        await asyncio.sleep(0.3)
    return seen, failures


async def _request_at_once(pki: Pki, port: int) -> str:
    """A request written the moment the client's handshake ends: with TLS 1.3 it reaches
    the server together with the client's last handshake message."""
    context = ssl.create_default_context(cafile=str(pki.agency))
    context.load_cert_chain(str(pki.alice), str(pki.alice_key))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return "1 https" if b"\r\n\r\n" in answer and b"1 https" in answer else repr(answer)


def _described(failures: list[HandshakeFailure]) -> list[tuple[object, ...]]:
    return [
        (f.peer_address, f.reason, f.openssl_reason, f.verify_message, f.certificate_fingerprint)
        for f in failures
    ]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_refused_handshake_is_reported_and_good_ones_serve(pki: Pki, loop: str) -> None:
    run = asyncio.run if loop == "asyncio" else uvloop.run

    seen, failures = run(_scenario(pki))

    assert seen == ["1 https", "1 https", "0 https", "1 https"]
    assert _described(failures) == [
        (
            "127.0.0.1",
            "tls.certificate_refused",
            "CERTIFICATE_VERIFY_FAILED",
            "unable to get local issuer certificate",
            None,
        ),
        (
            "127.0.0.1",
            "tls.certificate_refused",
            "CERTIFICATE_VERIFY_FAILED",
            "certificate has expired",
            None,
        ),
        ("127.0.0.1", "tls.handshake_failed", "HTTP_REQUEST", None, None),
        ("127.0.0.1", "tls.handshake_timeout", None, None, None),
    ]
    assert all(f.listener is not None and f.listener.startswith("127.0.0.1:") for f in failures)


async def test_a_shutdown_ends_a_connection_still_shaking_hands(pki: Pki) -> None:
    failures: list[HandshakeFailure] = []
    async with asyncio.timeout(15):  # a handshake the shutdown waited for would take 60 s
        async with _serving(pki, failures, timeout=60) as port:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01")
            await asyncio.sleep(0.1)
    writer.close()
    assert failures == []


# -- the limiter ---------------------------------------------------------------------------


def _failure(peer: str = "192.0.2.1", reason: str = "tls.certificate_refused") -> HandshakeFailure:
    return HandshakeFailure(peer, "0.0.0.0:8443", reason)


def test_a_peer_gets_its_cap_of_records_then_one_summary_when_the_window_ends() -> None:
    limiter = HandshakeFailureLimiter(per_peer=3, overall=100)

    admitted = [limiter.admit(_failure(), now=float(second)) for second in range(10)]

    assert admitted == [True] * 3 + [False] * 7
    assert limiter.due(now=59.0) == []
    assert limiter.next_end() == 60.0
    assert limiter.due(now=60.0) == [
        SuppressedFailures("per_peer", "192.0.2.1", "0.0.0.0:8443", 7, ("tls.certificate_refused",))
    ]
    assert limiter.due(now=61.0) == []
    assert limiter.admit(_failure(), now=61.0)  # a new window


def test_peers_have_separate_caps_and_all_share_the_overall_cap() -> None:
    limiter = HandshakeFailureLimiter(per_peer=2, overall=5)

    admitted = [limiter.admit(_failure(f"192.0.2.{n % 4}"), now=1.0) for n in range(8)]

    assert admitted == [True] * 5 + [False] * 3
    assert limiter.drain() == [
        SuppressedFailures("overall", None, "0.0.0.0:8443", 3, ("tls.certificate_refused",))
    ]


def test_a_summary_owed_when_a_window_rolls_over_is_kept_for_due() -> None:
    limiter = HandshakeFailureLimiter(per_peer=1, overall=100)
    limiter.admit(_failure(), now=0.0)
    limiter.admit(_failure(reason="tls.handshake_failed"), now=1.0)

    assert limiter.admit(_failure(), now=70.0)  # a new window for the peer
    assert limiter.due(now=70.0) == [
        SuppressedFailures("per_peer", "192.0.2.1", "0.0.0.0:8443", 1, ("tls.handshake_failed",))
    ]


def test_drain_gives_every_summary_owed_at_shutdown() -> None:
    limiter = HandshakeFailureLimiter(per_peer=1, overall=100)
    for peer in ("192.0.2.1", "192.0.2.2", "192.0.2.1"):
        limiter.admit(_failure(peer), now=0.0)
    limiter.admit(_failure("192.0.2.2"), now=0.0)

    assert [(s.peer_address, s.count) for s in limiter.drain()] == [
        ("192.0.2.1", 1),
        ("192.0.2.2", 1),
    ]
    assert limiter.drain() == []
