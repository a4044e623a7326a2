"""Where quota and rate-limit counts are kept: in this process, or in Redis for a fleet.

Two operations, each atomic in its store:

- `hit(key, limit, window, now)`: one more request in the fixed window of `window`
  seconds that contains `now`; refused (with the seconds until the window ends) once
  `limit` were counted. A fixed window admits at most `limit` requests per window, so
  at most 2 x `limit` in any `window` seconds that straddle a boundary (documented).
- grant budgets: `admit(key, quota, reserve, expires)` counts one request and reserves
  `reserve` tokens if the grant's requests and tokens (used + reserved + `reserve`) stay
  within its quota; `settle(key, reserved, used)` turns a reservation into the tokens the
  upstream reported. `usage(key)` reads (requests, tokens, reserved).

Errors of the store surface as CountersUnavailable.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

__all__ = ["Admission", "Counters", "CountersUnavailable", "MemoryCounters", "RedisCounters"]


class CountersUnavailable(Exception):
    """The counter store cannot be reached or failed; `reason` says why (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Admission = tuple[bool, str, int, int, int]
"""(admitted, what ran out: "" | "requests" | "tokens", requests used, tokens used, tokens
reserved for this request)."""


class Counters(Protocol):
    async def hit(self, key: str, limit: int, window: int, now: float) -> tuple[bool, float]: ...

    async def admit(
        self,
        key: str,
        requests: int | None,
        tokens: int | None,
        reserve: int,
        expires: float,
        shrink: bool = False,
    ) -> Admission:
        """Admit one request if the grant's budget allows; `shrink`: a reservation larger
        than the tokens left may take what is left instead of refusing."""
        ...

    async def settle(self, key: str, reserved: int, used: int, unserved: bool = False) -> None:
        """Replace a reservation by the tokens used; `unserved`: the request never reached
        the upstream, so it gives its request back too."""
        ...

    async def usage(self, key: str) -> tuple[int, int, int]: ...

    async def close(self) -> None: ...


def _window_end(now: float, window: int) -> float:
    return (math.floor(now / window) + 1) * window


class MemoryCounters:
    """Counters of this process only (one node, one worker)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._grants: dict[str, list[int]] = {}

    async def hit(self, key: str, limit: int, window: int, now: float) -> tuple[bool, float]:
        ends = _window_end(now, window)
        started, count = self._windows.get(key, (ends, 0))
        if started != ends:
            count = 0
            if len(self._windows) > 100_000:  # stale windows of past callers
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        if count >= limit:
            self._windows[key] = (ends, count)
            return False, ends - now
        self._windows[key] = (ends, count + 1)
        return True, 0.0

    async def admit(
        self,
        key: str,
        requests: int | None,
        tokens: int | None,
        reserve: int,
        expires: float,
        shrink: bool = False,
    ) -> Admission:
        used = self._grants.setdefault(key, [0, 0, 0])
        if requests is not None and used[0] >= requests:
            return False, "requests", used[0], used[1], 0
        if tokens is not None:
            left = tokens - used[1] - used[2]
            if shrink and 0 < left < reserve:
                reserve = left
            if reserve > left or left <= 0:
                return False, "tokens", used[0], used[1], 0
        used[0] += 1
        used[2] += reserve
        return True, "", used[0], used[1], reserve

    async def settle(self, key: str, reserved: int, used: int, unserved: bool = False) -> None:
        counts = self._grants.setdefault(key, [0, 0, 0])
        counts[1] += used
        counts[2] = max(0, counts[2] - reserved)
        if unserved:
            counts[0] = max(0, counts[0] - 1)

    async def usage(self, key: str) -> tuple[int, int, int]:
        requests, tokens, reserved = self._grants.get(key, [0, 0, 0])
        return requests, tokens, reserved

    async def close(self) -> None:
        return None


# Admission as one server-side step, so concurrent gateways never both take the last unit.
_ADMIT = """
local requests = tonumber(redis.call('HGET', KEYS[1], 'requests') or '0')
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local request_limit = tonumber(ARGV[1])
local token_limit = tonumber(ARGV[2])
local reserve = tonumber(ARGV[3])
if request_limit >= 0 and requests >= request_limit then
  return {0, 'requests', requests, tokens, 0}
end
if token_limit >= 0 then
  local left = token_limit - tokens - reserved
  if ARGV[5] == '1' and left > 0 and left < reserve then reserve = left end
  if reserve > left or left <= 0 then
    return {0, 'tokens', requests, tokens, 0}
  end
end
redis.call('HINCRBY', KEYS[1], 'requests', 1)
redis.call('HINCRBY', KEYS[1], 'reserved', reserve)
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {1, '', requests + 1, tokens, reserve}
"""

_SETTLE = """
redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[2])
local left = redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
if left < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
if ARGV[3] == '1' then
  local requests = redis.call('HINCRBY', KEYS[1], 'requests', -1)
  if requests < 0 then redis.call('HSET', KEYS[1], 'requests', 0) end
end
return 1
"""


class RedisCounters:
    """Counters shared by every gateway that names the same Redis (`redis://...` URL)."""

    def __init__(self, url: str, *, prefix: str = "gateway", timeout: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(  # type: ignore[no-untyped-call]
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            decode_responses=True,
        )
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def _call(self, coroutine: Any) -> Any:
        import redis

        try:
            return await coroutine
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"the counter store failed: {type(exc).__name__}") from exc

    async def hit(self, key: str, limit: int, window: int, now: float) -> tuple[bool, float]:
        ends = _window_end(now, window)
        name = self._key(f"window:{key}:{int(ends)}")
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.incr(name)
        pipeline.expireat(name, int(ends) + window)
        count, _ = await self._call(pipeline.execute())
        if int(count) > limit:
            return False, ends - now
        return True, 0.0

    async def admit(
        self,
        key: str,
        requests: int | None,
        tokens: int | None,
        reserve: int,
        expires: float,
        shrink: bool = False,
    ) -> Admission:
        result = await self._call(
            self._admit(
                keys=[self._key(f"grant:{key}")],
                args=[
                    -1 if requests is None else requests,
                    -1 if tokens is None else tokens,
                    reserve,
                    int(expires),
                    1 if shrink else 0,
                ],
            )
        )
        admitted, ran_out, used_requests, used_tokens, taken = result
        return (
            bool(admitted),
            str(ran_out or ""),
            int(used_requests),
            int(used_tokens),
            int(taken),
        )

    async def settle(self, key: str, reserved: int, used: int, unserved: bool = False) -> None:
        await self._call(
            self._settle(
                keys=[self._key(f"grant:{key}")], args=[reserved, used, 1 if unserved else 0]
            )
        )

    async def usage(self, key: str) -> tuple[int, int, int]:
        values = await self._call(
            self._redis.hmget(self._key(f"grant:{key}"), "requests", "tokens", "reserved")
        )
        requests, tokens, reserved = (int(v or 0) for v in values)
        return requests, tokens, reserved

    async def close(self) -> None:
        await self._redis.aclose()
