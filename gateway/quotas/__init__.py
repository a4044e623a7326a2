"""Quotas and rate limits: how much a grant and a caller may use, counted in this process
or in Redis for a fleet (docs/policy.md, docs/configuration.md)."""

from gateway.quotas.counters import (
    Counters,
    CountersUnavailable,
    MemoryCounters,
    RedisCounters,
)
from gateway.quotas.limiter import QuotaLimiter, QuotaSettings, Ticket, Verdict

__all__ = [
    "Counters",
    "CountersUnavailable",
    "MemoryCounters",
    "QuotaLimiter",
    "QuotaSettings",
    "RedisCounters",
    "Ticket",
    "Verdict",
]
