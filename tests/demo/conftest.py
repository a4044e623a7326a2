"""A demo upstream with a fixed clock, served on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.demo.upstream import DemoUpstream, create_app
from tests.servers import serve_asgi

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def upstream() -> DemoUpstream:
    return create_app(models=["demo-model", "demo-prerelease"], clock=lambda: NOW)


@pytest.fixture
async def base_url(upstream: DemoUpstream) -> AsyncIterator[str]:
    async with serve_asgi(upstream) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield http
