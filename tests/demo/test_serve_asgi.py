"""The shared `serve_asgi` test helper: plain HTTP, TLS, and a server that fails to start."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
import trustme

from gateway.demo.upstream import create_app
from tests.servers import serve_asgi


async def test_serves_plain_http_on_an_ephemeral_loopback_port() -> None:
    async with serve_asgi(create_app()) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/healthz")

    assert url.startswith("http://127.0.0.1:")
    assert response.status_code == 200


async def test_serves_tls_with_the_given_context() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async with (
        serve_asgi(create_app(), ssl=server_context) as url,
        httpx.AsyncClient(base_url=url, verify=client_context) as http,
    ):
        response = await http.get("/healthz")

    assert url.startswith("https://127.0.0.1:")
    assert response.status_code == 200


async def failing_lifespan(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "cannot start"})


async def test_raises_when_the_app_fails_to_start() -> None:
    with pytest.raises(RuntimeError, match="stopped before it started"):
        async with serve_asgi(failing_lifespan):
            pass
