"""Fixtures shared by the end-to-end tests: one test PKI per session, a gateway per test;
and the order in which pytest-xdist hands tests to its workers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.harness import Clock, RunningGateway, instant, make_pki, running_gateway

# Properties are judged by their examples, not their speed: on a shared two-core machine
# running four test workers, one example can take 300 ms for reasons of its own.
settings.register_profile("gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gateway")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start each `slow` test at the head of one worker's share.

    pytest-xdist's `worksteal` splits the collection into one contiguous share per
    worker. A slow test collected late (the clean install, say) would start a minute
    into the run and finish last; placed at the head of a share, the slow tests start
    at once, one worker each, and the quick ones fill in around them.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    quick = [item for item in items if item.get_closest_marker("slow") is None]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for index, item in enumerate(slow):
        shares[index % workers].append(item)
    # The size worksteal gives each share: what remains, divided by the workers left.
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for number, share in enumerate(shares):
        size = remaining // (workers - number)
        remaining -= size
        fill = max(0, size - len(share))
        ordered += share + quick[:fill]
        del quick[:fill]
    items[:] = ordered + quick
