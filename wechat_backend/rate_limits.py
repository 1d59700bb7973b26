"""Rolling-window rate limits (the binding flow's, the login callback's), kept in Redis, failing closed.

Each limit is a sorted set of event times (ms) per subject. :meth:`RateLimits.take` checks several
windows at once and records the event in all of them only when every one has room, in a single
Lua script, so two processes can never both take the last slot. Redis unreachable or slow means
:class:`~wechat_backend.errors.Unavailable`: without the counters nothing may be sent (OTP-11).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .clock import Clock
from .errors import RateLimited, Unavailable

log = logging.getLogger("wechat_backend.rate_limits")

REDIS_TIMEOUT = 1.0

# KEYS: one sorted set per window. ARGV: now_ms, member, then (window_ms, limit) per key.
# Returns {0, 0} when the event was recorded everywhere, else {ms until the tightest full window
# frees, that window's 1-based index}.
_TAKE = """
local now = tonumber(ARGV[1])
local wait, which = 0, 0
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[1 + 2 * i])
  local limit = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, -limit, -limit, 'WITHSCORES')
    local free_at = tonumber(oldest[2]) + window
    if free_at - now > wait then wait, which = free_at - now, i end
  end
end
if wait > 0 then return {wait, which} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[1 + 2 * i]))
end
return {0, 0}
"""


def retry_after_seconds(available_at: float, now: float) -> int:
    """Whole seconds until ``available_at`` (at least 1), for ``Retry-After``."""
    return max(1, int(available_at - now + 0.999))


@dataclass(frozen=True)
class Window:
    """At most ``limit`` events per ``seconds`` for one subject key."""

    key: str
    seconds: int
    limit: int


class WindowFull(RateLimited):
    """Over a limit: :class:`RateLimited`, knowing which window was full."""

    def __init__(self, retry_after: int, window: Window) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
        self.window = window


class RateLimits:
    def __init__(self, redis: aioredis.Redis | None, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock
        self._script = redis.register_script(_TAKE) if redis is not None else None

    async def take(self, windows: Sequence[Window], what: str) -> None:
        """Record one event in every window, or raise :class:`WindowFull` with the wait."""
        if not windows:
            return
        if self._script is None:
            raise Unavailable()
        now_ms = int(self._clock.time() * 1000)
        args: list[int | str] = [now_ms, f"{now_ms}-{secrets.token_hex(4)}"]
        for w in windows:
            args += [w.seconds * 1000, w.limit]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                wait_ms, which = (int(x) for x in await self._script(keys=[w.key for w in windows], args=args))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limits unavailable (%s) for %s: refusing", type(exc).__name__, what)
            raise Unavailable() from None
        if wait_ms > 0:
            log.info("rate limit reached for %s", what)
            raise WindowFull(retry_after_seconds((now_ms + wait_ms) / 1000, now_ms / 1000), windows[which - 1])
