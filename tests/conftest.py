"""Fixtures shared by the end-to-end tests: one test PKI per session, a gateway per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Clock, RunningGateway, instant, make_pki, running_gateway

# After muse-1's release, before muse-spark-2's grant opens.
ORDINARY_DAY = "2026-12-01T12:00:00Z"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def clock() -> Clock:
    return Clock(instant(ORDINARY_DAY))


@pytest.fixture
async def gateway(tmp_path: Path, pki: Path, clock: Clock) -> AsyncIterator[RunningGateway]:
    async with running_gateway(tmp_path, pki, clock=clock) as running:
        yield running
