"""Quotas and rate limits on the request path, after the policy allowed a request.

What the policy declares (docs/policy.md): a grant's `quota` (requests and tokens over its
whole window) and `settings.rate_limits` (requests per minute per principal and per
organisation). What the gateway does:

1. rate limits: one more request in the current minute for the caller and for their
   organisation; over the limit is `429 rate_limited` with `retry-after` (seconds to the
   next minute);
2. a grant's quota: the request is admitted only if the grant's requests stay within
   its quota and its tokens (used + reserved by requests in flight + this request's
   reservation) do too; over it is `429 quota_exhausted` with `retry-after` (seconds until
   the grant's window ends: nothing frees budget before then but an operator);
3. after the response, the reservation is replaced by the tokens the upstream reported
   (streams included); a response that reports none keeps its reservation as its cost.
   A streamed request under a grant with a token quota must ask for its usage
   (`stream_options.include_usage: true`), else `400 usage_required`: OpenAI-compatible
   servers report a stream's usage only when asked. A request that is never forwarded
   (its record could not be written) gives back its request and its reservation.

A request's reservation is its `max_completion_tokens` / `max_tokens` /
`max_output_tokens` when it sets one (it must fit in what is left), else
`quotas.reserve_tokens` or what is left of the budget if that is less. So a token quota
is exceeded by at most, per request in flight, its prompt tokens plus any completion
tokens beyond its reservation (none when callers set a maximum).

If the counter store is unreachable: grant quotas fail closed (`503 quota_unavailable`),
rate limits do as `quotas.on_store_failure` says (`allow`, the default, or `deny`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gateway.config import Section
from gateway.policy import Decision, Grant, Policy
from gateway.quotas.counters import Counters, CountersUnavailable, MemoryCounters, RedisCounters

__all__ = ["QuotaLimiter", "QuotaSettings", "Ticket", "Verdict"]

_MINUTE = 60
_RESERVE_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
# Routes whose streams report usage only when asked (`stream_options.include_usage`); a
# Responses API stream always ends with its usage (`response.completed`).
_USAGE_ON_REQUEST = frozenset({"/v1/chat/completions", "/v1/completions"})


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    """The `quotas:` settings section."""

    store: str | None = None
    key_prefix: str = "gateway"
    on_store_failure: Literal["allow", "deny"] = "allow"
    reserve_tokens: int = 1024
    timeout_seconds: float = 0.5

    @classmethod
    def from_section(cls, section: Section) -> QuotaSettings:
        section.reject_unknown(
            "store", "key_prefix", "on_store_failure", "reserve_tokens", "timeout_seconds"
        )
        store = section.string("store", None)
        if store is not None and not store.startswith(("redis://", "rediss://", "unix://")):
            section.fail("store", "expected a redis://, rediss:// or unix:// URL")
        return cls(
            store=store,
            key_prefix=section.string("key_prefix", "gateway"),
            on_store_failure=section.choice("on_store_failure", ("allow", "deny"), "allow"),
            reserve_tokens=section.integer("reserve_tokens", 1024, minimum=0),
            timeout_seconds=section.number("timeout_seconds", 0.5, minimum=0.01),
        )

    def counters(self) -> Counters:
        if self.store is None:
            return MemoryCounters()
        return RedisCounters(self.store, prefix=self.key_prefix, timeout=self.timeout_seconds)


@dataclass(frozen=True, slots=True)
class Ticket:
    """What settling an admitted request needs: its grant budget and its reservation."""

    grant_key: str
    reserved: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """Admitted (with a ticket when a grant budget was charged), or refused and why."""

    allowed: bool
    reason: str | None = None  # rate_limited.principal | rate_limited.organisation | ...
    status: int = 200
    code: str | None = None  # rate_limited | quota_exhausted | quota_unavailable | usage_required
    retry_after: int | None = None
    ticket: Ticket | None = None

    def message(self) -> str:
        if self.code == "rate_limited":
            return "Too many requests; slow down and retry after the time given."
        if self.code == "quota_exhausted":
            return "The quota of your access grant for this model is used up."
        if self.code == "usage_required":
            return (
                "Your access grant counts tokens: a streamed request must set"
                ' "stream_options": {"include_usage": true} so that its usage can be counted.'
            )
        return "The gateway cannot check quotas right now; nothing was forwarded."


ADMITTED = Verdict(True)
# A stream under a token quota that would not report its usage could not be counted.
USAGE_REQUIRED = Verdict(False, "quota.usage_required", 400, "usage_required")


def grant_key(grant: Grant) -> str:
    """A grant's budget key: its id and window, so a reused id starts a fresh budget."""
    return f"{grant.id}:{int(grant.not_before.timestamp())}"


class QuotaLimiter:
    """Applies the policy's quotas and rate limits with `counters` (in process or Redis)."""

    def __init__(
        self,
        settings: QuotaSettings,
        counters: Counters,
        logger: Any,
        report: Callable[[str, str, float, float | None], None] | None = None,
        *,
        alone_among_workers: bool = False,
    ) -> None:
        """`report(grant id, "requests" | "tokens", used, limit)` hears each grant's use
        as the counters know it (the metrics publish it). `alone_among_workers`: this is
        one of several workers counting in process, so a grant budget cannot be kept (each
        worker would grant it whole): grant quotas fail closed, as with a store down."""
        self.alone_among_workers = alone_among_workers
        self._warned_alone = False
        self.settings = settings
        self.counters = counters
        self.logger = logger
        self.report = report
        self._grants: dict[str, Grant] = {}
        self._grants_version = ""

    def grant(self, policy: Policy, grant_id: str | None) -> Grant | None:
        """The grant of `policy` named `grant_id`, looked up in O(1)."""
        if grant_id is None:
            return None
        if self._grants_version != policy.version:
            self._grants = {grant.id: grant for grant in policy.grants}
            self._grants_version = policy.version
        return self._grants.get(grant_id)

    async def admit(
        self,
        policy: Policy,
        decision: Decision,
        caller: str,
        organisation: str | None,
        body: dict[str, Any],
        now: float,
        *,
        route: str = "/v1/chat/completions",
    ) -> Verdict:
        """Charge this request to the caller's rate limits and its grant's quota."""
        limits = policy.settings.rate_limits
        checks = []
        if limits.principal_per_minute is not None:
            checks.append(("principal", f"rate:principal:{caller}", limits.principal_per_minute))
        if organisation is not None:
            limit = limits.for_organisation(organisation)
            if limit is not None:
                checks.append(("organisation", f"rate:organisation:{organisation}", limit))
        if checks and self.alone_among_workers:
            # Each worker would count alone: N workers, N times the limit.
            if not self._warned_alone:
                self._warned_alone = True
                self.logger.error(
                    "quota.store_unavailable",
                    check="rate_limit",
                    error="quotas.store is needed with --workers",
                )
            if self.settings.on_store_failure == "deny":
                return _unavailable("rate_limit")
        for name, key, limit in checks:
            try:
                allowed, wait = await self.counters.hit(key, limit, _MINUTE, now)
            except CountersUnavailable as exc:
                self.logger.error("quota.store_unavailable", check="rate_limit", error=exc.reason)
                if self.settings.on_store_failure == "deny":
                    return _unavailable("rate_limit")
                continue
            if not allowed:
                return Verdict(
                    False, f"rate_limited.{name}", 429, "rate_limited", max(1, round(wait + 0.5))
                )
        grant = self.grant(policy, decision.grant_id)
        if grant is None or grant.quota is None:
            return ADMITTED
        counts_tokens = grant.quota.tokens is not None
        if (
            counts_tokens
            and route in _USAGE_ON_REQUEST
            and body.get("stream") not in (None, False)  # 1 or "true" stream on some servers
            and not _asks_for_usage(body)
        ):
            return USAGE_REQUIRED
        explicit = _reservation(body)
        reserve = explicit if explicit is not None else self.settings.reserve_tokens
        if self.alone_among_workers:
            self.logger.error(
                "quota.store_unavailable",
                check="grant",
                error="quotas.store is needed with --workers",
            )
            return _unavailable("grant")
        key = grant_key(grant)
        try:
            admitted, ran_out, used_requests, used_tokens, taken = await self.counters.admit(
                key,
                grant.quota.requests,
                grant.quota.tokens,
                reserve if counts_tokens else 0,
                grant.not_after.timestamp() + 86_400,
                shrink=explicit is None,
            )
        except CountersUnavailable as exc:
            self.logger.error("quota.store_unavailable", check="grant", error=exc.reason)
            return _unavailable("grant")
        if self.report is not None:
            self.report(grant.id, "requests", used_requests, grant.quota.requests)
            self.report(grant.id, "tokens", used_tokens, grant.quota.tokens)
        if not admitted:
            ends = max(1, round(grant.not_after.timestamp() - now))
            return Verdict(False, f"quota.{ran_out}_exhausted", 429, "quota_exhausted", ends)
        return Verdict(True, ticket=Ticket(key, taken))

    async def settle(self, ticket: Ticket | None, usage: Any) -> None:
        """Replace the reservation with the tokens the upstream reported (if it did)."""
        if ticket is None or (ticket.reserved == 0 and usage is None):
            return
        used = _tokens(usage)
        if used is None:
            self.logger.warning("quota.usage_missing", reserved=ticket.reserved)
        await self._settle(ticket, used if used is not None else ticket.reserved)

    async def release(self, ticket: Ticket | None) -> None:
        """Give back what an admitted request took when it was never forwarded (its
        record could not be written): its request and its reservation."""
        if ticket is not None:
            await self._settle(ticket, 0, unserved=True)

    async def _settle(self, ticket: Ticket, used: int, unserved: bool = False) -> None:
        try:
            await self.counters.settle(ticket.grant_key, ticket.reserved, used, unserved)
        except CountersUnavailable as exc:
            # What was reserved stays counted in the store: too much, never too little.
            self.logger.error("quota.settle_failed", error=exc.reason)

    async def budget(self, grant: Grant, now: datetime) -> dict[str, Any] | None:
        """What is left of a grant's quota (for /v1/whoami), or None without a quota."""
        if grant.quota is None:
            return None
        try:
            requests, tokens, reserved = await self.counters.usage(grant_key(grant))
        except CountersUnavailable:
            return {"available": False}
        quota = grant.quota
        return {
            "requests": {"limit": quota.requests, "used": requests}
            | ({"remaining": max(0, quota.requests - requests)} if quota.requests else {}),
            "tokens": {"limit": quota.tokens, "used": tokens, "reserved": reserved}
            | ({"remaining": max(0, quota.tokens - tokens - reserved)} if quota.tokens else {}),
        }

    async def close(self) -> None:
        await self.counters.close()


def _unavailable(check: str) -> Verdict:
    return Verdict(False, f"quota.unavailable[{check}]", 503, "quota_unavailable", 1)


def _reservation(body: dict[str, Any]) -> int | None:
    """The request's own maximum of output tokens, if it sets one."""
    for name in _RESERVE_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _asks_for_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed request asks the upstream to report its usage at the end."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _tokens(usage: Any) -> int | None:
    """Tokens a usage report counts: its total, else prompt + completion as reported."""
    if usage is None:
        return None
    total = getattr(usage, "total_tokens", None)
    if isinstance(total, int):
        return total
    parts = [getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens")]
    counted = [part for part in parts if isinstance(part, int)]
    return sum(counted) if counted else None
