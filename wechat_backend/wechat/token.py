"""The official account's access token: one for all processes, kept in Redis, one refresher at a time.

Every new ``cgi-bin/token`` answer invalidates the previous token (after a 5-minute overlap), so N
processes refreshing on their own keep breaking each other with 40001. As WxJava does:

* the token lives at :func:`token_key` with a TTL equal to its ``expires_in``;
* a reader refreshes when less than :data:`REFRESH_AHEAD_SECONDS` are left, and only under the lock
  at :func:`lock_key` (``SET NX PX`` with a random value, released by compare-and-delete); after
  taking the lock it reads the token again, because the previous holder may just have stored one;
* a reader that does not get the lock keeps using the old token if it still works, and otherwise
  polls briefly for the new one;
* after a token error, :meth:`AccessTokenStore.invalidate_if_current` drops the cached token only if
  it is still the one that failed (a Lua compare-and-delete), so a newer token is never thrown away.

``[wechat] use_stable_token`` switches to ``cgi-bin/stable_token`` (normal mode, ``force_refresh``
false): it is isolated from ``cgi-bin/token`` and repeated calls return the same token.

官方文档：https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html ·
https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..config import WechatSettings
from .api import WeChatHttp, WeChatUnavailable

log = logging.getLogger("wechat_backend.wechat")

# Refresh when less than this is left. stable_token never hands out less than 300 s, and the old
# cgi-bin/token stays valid 5 minutes after a refresh, so 5 minutes keeps every caller covered.
REFRESH_AHEAD_SECONDS = 300
# How often a reader without the lock looks for the new token.
POLL_SECONDS = 0.05

_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _store_down() -> WeChatUnavailable:
    return WeChatUnavailable("cgi-bin/token", "token_store", "the token store (Redis) did not answer")


def token_key(prefix: str, app_id: str) -> str:
    return f"{prefix}:wechat:token:{app_id}"


def lock_key(prefix: str, app_id: str) -> str:
    return f"{prefix}:wechat:token-lock:{app_id}"


class AccessTokenStore:
    """The shared access token. ``get`` is cheap (one Redis round trip) while the token is fresh."""

    def __init__(self, settings: WechatSettings, redis: aioredis.Redis, http: WeChatHttp, *, key_prefix: str) -> None:
        self._settings = settings
        self._redis = redis
        self._http = http
        self._token_key = token_key(key_prefix, settings.app_id)
        self._lock_key = lock_key(key_prefix, settings.app_id)
        # A refresh holds the lock for at most one platform call; the lease outlives it so that a
        # slow answer is not refreshed twice, and a crashed holder blocks the others only briefly.
        self._lease_ms = int(max(3 * settings.timeout_seconds, 5.0) * 1000)
        self._wait_seconds = settings.timeout_seconds + 1.0
        self._compare_and_delete = redis.register_script(_COMPARE_AND_DELETE)

    async def get(self) -> str:
        """A valid access token, refreshed first if it is missing or close to expiry."""
        token, ttl = await self._read()
        if token and ttl > REFRESH_AHEAD_SECONDS:
            return token
        return await self._refresh(token)

    async def invalidate_if_current(self, token: str) -> bool:
        """Drop the cached token if it is still ``token``; True when it was dropped."""
        try:
            return bool(await self._compare_and_delete(keys=[self._token_key], args=[token]))
        except RedisError:
            raise _store_down() from None

    async def _read(self) -> tuple[str | None, float]:
        """The cached token and the seconds it has left (0 when there is none)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._token_key)
                pipe.pttl(self._token_key)
                raw, pttl = await pipe.execute()
        except RedisError:
            raise _store_down() from None
        if raw is None or pttl is None or pttl < 0:
            return None, 0.0
        return (raw.decode() if isinstance(raw, bytes) else str(raw)), pttl / 1000.0

    async def _refresh(self, stale: str | None) -> str:
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self._wait_seconds
        while True:
            try:
                locked = await self._redis.set(self._lock_key, owner, nx=True, px=self._lease_ms)
            except RedisError:
                raise _store_down() from None
            if locked:
                try:
                    return await self._refresh_locked()
                finally:
                    await self._unlock(owner)
            if stale:
                # Someone else is refreshing; the old token still works meanwhile.
                return stale
            await asyncio.sleep(POLL_SECONDS)
            token, ttl = await self._read()
            if token and ttl > 0:
                return token
            if time.monotonic() > deadline:
                raise WeChatUnavailable("cgi-bin/token", "timeout", "another process is refreshing the token")

    async def _refresh_locked(self) -> str:
        # The previous holder may have stored a fresh token between our read and our lock.
        token, ttl = await self._read()
        if token and ttl > REFRESH_AHEAD_SECONDS:
            return token
        token, expires_in = await self._fetch()
        try:
            await self._redis.set(self._token_key, token, px=expires_in * 1000)
        except RedisError:
            raise _store_down() from None
        log.info("wechat access token refreshed (expires in %d s)", expires_in)
        return token

    async def _unlock(self, owner: str) -> None:
        try:
            await self._compare_and_delete(keys=[self._lock_key], args=[owner])
        except RedisError:
            log.warning("wechat token lock not released; it expires by itself")

    async def _fetch(self) -> tuple[str, int]:
        s = self._settings
        if s.use_stable_token:
            api = "cgi-bin/stable_token"
            answer = await self._http.call(
                "POST",
                api,
                body={
                    "grant_type": "client_credential",
                    "appid": s.app_id,
                    "secret": s.app_secret,
                    "force_refresh": False,
                },
                hide=(s.app_secret,),
            )
        else:
            api = "cgi-bin/token"
            answer = await self._http.call(
                "GET",
                api,
                params={"grant_type": "client_credential", "appid": s.app_id, "secret": s.app_secret},
                hide=(s.app_secret,),
            )
        token, expires_in = answer.get("access_token"), answer.get("expires_in", 7200)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise WeChatUnavailable(api, "bad_response", "no access_token in the answer")
        return token, expires_in
