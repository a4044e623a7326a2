"""A grant budget's arithmetic, the same in process and in Redis: reservations that must
fit, default reservations that shrink to what is left, and requests given back when they
were never forwarded."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import pytest

from gateway.quotas.counters import Counters, MemoryCounters, RedisCounters

EXPIRES = time.time() + 300  # the shared Redis forgets these test keys soon


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    made: Counters = (
        MemoryCounters()
        if request.param == "memory"
        else RedisCounters("redis://127.0.0.1:6379/0", prefix=f"test-{secrets.token_hex(6)}")
    )
    yield made
    await made.close()


async def test_a_reservation_must_fit_unless_it_may_shrink(counters: Counters) -> None:
    assert await counters.admit("g", None, 500, 1024, EXPIRES) == (False, "tokens", 0, 0, 0)
    assert await counters.admit("g", None, 500, 1024, EXPIRES, shrink=True) == (
        True,
        "",
        1,
        0,
        500,
    )
    # Everything is reserved by the request in flight: nothing left to shrink to.
    assert (await counters.admit("g", None, 500, 1024, EXPIRES, shrink=True))[0] is False
    await counters.settle("g", 500, 120)
    assert await counters.admit("g", None, 500, 1024, EXPIRES, shrink=True) == (
        True,
        "",
        2,
        120,
        380,
    )
    await counters.settle("g", 380, 380)
    assert await counters.usage("g") == (2, 500, 0)
    assert (await counters.admit("g", None, 500, 0, EXPIRES, shrink=True))[:2] == (False, "tokens")


async def test_a_request_never_forwarded_gives_back_what_it_took(counters: Counters) -> None:
    assert (await counters.admit("g", 2, 1000, 100, EXPIRES))[0]
    await counters.settle("g", 100, 0, unserved=True)
    assert await counters.usage("g") == (0, 0, 0)
    for _ in range(2):
        assert (await counters.admit("g", 2, 1000, 100, EXPIRES))[0]
    assert await counters.admit("g", 2, 1000, 100, EXPIRES) == (False, "requests", 2, 0, 0)
