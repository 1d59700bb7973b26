"""WeChat's retries: each delivered push has a dedupe key in Redis holding its reply.

被动回复 (5 s, three tries, ``success``):
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html

WeChat retries an unanswered push after 5 s, three times in all. The first delivery claims the key
of :func:`dedup_key` (``SET NX``, pending) and stores its reply there once worked out; a retry gets
the stored reply, waiting within its budget while the first is still at work, and is never
processed again. For an answer that needs no I/O but the follower's contact line, one Lua script
claims the key, splices in the cached line and stores the reply: one round trip, batched per loop
turn by :class:`.script_batch.ScriptBatch`.

Every Redis call is bounded by :data:`REDIS_TIMEOUT` and best effort (:func:`best_effort`): when
Redis fails or is not there, the push is answered without dedupe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..config import Settings
from ..redis_client import key
from .inbound import Label
from .script_batch import ScriptBatch

log = logging.getLogger("wechat_backend.wechat.dedupe")

REDIS_TIMEOUT = 0.5  # one Redis call may not eat the budget
DEDUP_TTL = 300  # WeChat's three tries span about 15 s
POLL_INTERVAL = 0.05

# Stands for the contact line in a rendered reply until the script splices in the cached one;
# XML cannot carry NUL, so nothing parsed from a push can contain it.
LINE = "\x00contact\x00"

_PENDING, _DONE = "P", "R"
_FAILED = object()

# Claim a message's dedupe key (KEYS[1]) and, when the reply is known, store it in the same step.
# With KEYS[2] the reply names the follower's contact line cached there: ARGV[2] .. line .. ARGV[3].
# One string back (cheaper to read than an array): "C" + the stored value (claimed, reply stored),
# "M" (claimed, no cached line: the caller works it out and stores it) or "D" + what the first
# delivery stored, if anything (a retry).
_REPLY_SCRIPT = """
local line = ''
if KEYS[2] then
  line = redis.call('GET', KEYS[2])
  if not line then
    if redis.call('SET', KEYS[1], 'P', 'NX', 'EX', ARGV[1]) then return 'M' end
    return 'D' .. (redis.call('GET', KEYS[1]) or '')
  end
end
local reply = 'R' .. ARGV[2] .. line .. ARGV[3]
if redis.call('SET', KEYS[1], reply, 'NX', 'EX', ARGV[1]) then return 'C' .. reply end
return 'D' .. (redis.call('GET', KEYS[1]) or '')
"""
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def dedup_key(settings: Settings, dedup_id: str) -> str:
    """``{prefix}:wechat:dedup:<id>``: one key per delivered message or event."""
    return key(settings, "wechat", "dedup", dedup_id)


async def best_effort(
    label: object, call: Callable[..., Awaitable[Any]], *args: Any, purpose: str = "dedupe", **kw: Any
) -> Any:
    """One Redis call, bounded in time; failures are logged (no personal data) and give _FAILED."""
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):  # no task per call, unlike wait_for
            return await call(*args, **kw)
    except _REDIS_ERRORS as exc:
        _redis_failed(label, exc, purpose)
        return _FAILED


class DedupeStore:
    """The dedupe keys of one callback; without Redis every push is ours to process."""

    def __init__(self, settings: Settings, redis: aioredis.Redis | None) -> None:
        self._settings = settings
        self._redis = redis
        self._reply_script = ScriptBatch(redis, _REPLY_SCRIPT, REDIS_TIMEOUT) if redis is not None else None

    async def answer_once(
        self, did: str, label: Label, reply: str, contact_key: str | None
    ) -> tuple[bool | None, str | None]:
        """Claim and store ``reply`` in one round trip; with ``contact_key``, :data:`LINE` in it is
        replaced by the line cached there. ``(True, reply)`` claimed and stored; ``(True, None)``
        claimed, but the contact line is not cached; ``(False, stored)`` a retry; ``(None, None)``
        no dedupe."""
        assert self._reply_script is not None
        keys = [dedup_key(self._settings, did)]
        if contact_key is not None:
            keys.append(contact_key)
        head, _, tail = reply.partition(LINE)
        try:
            result = await self._reply_script.call(keys, [DEDUP_TTL, head, tail])
        except _REDIS_ERRORS as exc:
            _redis_failed(label, exc)
            return None, None
        result = result.decode("utf-8") if isinstance(result, bytes) else result
        state, value = result[:1], result[1:]
        if state == "C":
            return True, value[len(_DONE) :]
        return (True, None) if state == "M" else (False, value or None)

    async def claim(self, did: str, label: Label) -> bool | None:
        """True: ours to process; False: a retry; None: no dedupe (no Redis, or it failed)."""
        if self._redis is None:
            return None
        dkey = dedup_key(self._settings, did)
        ok = await best_effort(label, self._redis.set, dkey, _PENDING, nx=True, ex=DEDUP_TTL)
        if ok is _FAILED:
            return None
        return bool(ok)  # SET NX answers None when the key exists

    async def keep(self, did: str, label: Label, inner: str) -> None:
        """The reply a claimed push got ('' for ``success``), for its retries."""
        if self._redis is not None:
            await best_effort(label, self._redis.set, dedup_key(self._settings, did), _DONE + inner, ex=DEDUP_TTL)

    async def forget(self, did: str, label: Label) -> None:
        """Release a claim whose work failed, so a retry tries again."""
        if self._redis is not None:
            await best_effort(label, self._redis.delete, dedup_key(self._settings, did))

    async def stored_reply(self, did: str, label: Label, deadline: float, value: str | None) -> str:
        """The first delivery's reply (``value`` when already read); while it is still being worked
        out, wait within the budget."""
        assert self._redis is not None
        loop = asyncio.get_running_loop()
        while True:
            if value is None:
                got = await best_effort(label, self._redis.get, dedup_key(self._settings, did))
                value = got.decode("utf-8") if isinstance(got, bytes) else ""  # also _FAILED
            if value.startswith(_DONE):
                return value[len(_DONE) :]
            if not value or loop.time() + POLL_INTERVAL > deadline:
                return ""
            await asyncio.sleep(POLL_INTERVAL)
            value = None

    async def drain(self) -> None:
        """Wait for script calls in flight (shutdown, tests)."""
        if self._reply_script is not None:
            await self._reply_script.drain()


def _redis_failed(label: object, exc: BaseException, purpose: str = "dedupe") -> None:
    log.warning("wechat %s unavailable (%s) for %s: answering without it", purpose, type(exc).__name__, label)
