"""What quotas and rate limits cost a request: `QuotaLimiter.admit` and `settle`.

In process (the counters of one gateway): a request under a grant with a quota of
requests and tokens, with per-caller and per-organisation rate limits on, and the same
request with no limits declared (the default). With Redis (127.0.0.1:6379, or
GATEWAY_BENCH_REDIS): the same with shared counters, where the round trips dominate.

Run: .venv/bin/python bench/bench_quotas.py
Target (issue 11, quotas and metrics together, in process): <= 10 µs per request.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.logs import get_logger
from gateway.policy import Decision, Grant
from gateway.policy._model import Quota, RateLimits, Settings
from gateway.quotas import MemoryCounters, QuotaLimiter, QuotaSettings, RedisCounters

REDIS = os.environ.get("GATEWAY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
REQUESTS = 20_000


class _Policy:
    """The two things the limiter reads of a policy: its settings and its grants."""

    def __init__(self, settings: Settings, grants: tuple[Grant, ...]) -> None:
        self.settings = settings
        self.grants = grants
        self.version = "bench"


def _setup(limited: bool) -> tuple[_Policy, Decision]:
    now = datetime.now(UTC)
    grant = Grant(
        id="bench-grant",
        organisation="US CAISI",
        subjects=frozenset(),
        models=("model",),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=1),
        purpose="bench",
        quota=Quota(requests=10**9, tokens=10**12) if limited else None,
    )
    limits = RateLimits(10**9, 10**9) if limited else RateLimits()
    decision = Decision(
        allowed=True,
        reason="allow.grant",
        status=200,
        error_code=None,
        rules=(),
        grant_id=grant.id,
        grant_not_after=grant.not_after,
        obligations=(),
        policy_version="bench",
        roles=frozenset(),
    )
    return _Policy(replace(Settings(), rate_limits=limits), (grant,)), decision


class _Usage:
    prompt_tokens = 10
    completion_tokens = 20
    total_tokens = 30


async def _run(limiter: QuotaLimiter, limited: bool, count: int) -> float:
    policy, decision = _setup(limited)
    body = {"model": "model", "max_tokens": 64}
    usage = _Usage()
    times = []
    for _ in range(count):
        started = time.perf_counter_ns()
        verdict = await limiter.admit(
            policy, decision, "issuer subject", "US CAISI", body, time.time()
        )  # type: ignore[arg-type]
        await limiter.settle(verdict.ticket, usage)
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def main() -> None:
    logger = get_logger()
    for limited in (False, True):
        limiter = QuotaLimiter(QuotaSettings(), MemoryCounters(), logger)
        median = asyncio.run(_run(limiter, limited, REQUESTS))
        label = "grant quota + rate limits" if limited else "no limits declared"
        print(f"quotas in process, {label}: median {median:.1f} us per request", flush=True)

    async def shared() -> float:
        counters = RedisCounters(REDIS, prefix=f"bench-{secrets.token_hex(4)}")
        limiter = QuotaLimiter(QuotaSettings(store=REDIS), counters, logger)
        try:
            return await _run(limiter, True, 2000)
        finally:
            await limiter.close()

    try:
        median = asyncio.run(shared())
        print(f"quotas in Redis, grant quota + rate limits: median {median:.0f} us per request")
    except Exception as exc:  # noqa: BLE001 - no Redis here: say so, measure the rest
        print(f"quotas in Redis: not measured ({type(exc).__name__})")


if __name__ == "__main__":
    main()
