"""The shared access token: one fetch however many processes ask, refreshed ahead of expiry, dropped
only when it is still the one that failed. Each "process" here has its own Redis and HTTP clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from platform_double import APP_ID, APP_SECRET, Platform, running_platform

from wechat_backend.config import WechatSettings
from wechat_backend.wechat.api import WeChatApiError, WeChatHttp, WeChatUnavailable
from wechat_backend.wechat.token import REFRESH_AHEAD_SECONDS, AccessTokenStore, lock_key, token_key


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    async with running_platform() as p:
        yield p


@pytest.fixture
async def process(platform: Platform, redis_url: str, prefix: str) -> AsyncIterator[Callable[..., AccessTokenStore]]:
    """Makes the token store of one more server process: its own Redis connection and HTTP client."""
    opened: list[tuple[aioredis.Redis, WeChatHttp]] = []

    def make(redis_to: str | None = None, **wechat: Any) -> AccessTokenStore:
        settings = WechatSettings(
            **{"app_id": APP_ID, "app_secret": APP_SECRET, "api_base_url": platform.url, **wechat}
        )
        client = aioredis.from_url(redis_to or redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        http = WeChatHttp(settings)
        opened.append((client, http))
        return AccessTokenStore(settings, client, http, key_prefix=prefix)

    yield make
    for client, http in opened:
        await http.close()
        await client.aclose()


async def test_the_token_is_fetched_once_and_shared_by_every_process(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    a, b = process(), process()
    token = await a.get()
    assert await b.get() == token == platform.token
    assert await a.get() == token
    assert platform.calls["cgi-bin/token"] == 1
    ttl = await redis.ttl(token_key(prefix, APP_ID))
    assert 7100 < ttl <= 7200  # the token's own lifetime


async def test_concurrent_refreshers_fetch_once(process: Callable[..., AccessTokenStore], platform: Platform) -> None:
    platform.token_delay = 0.3  # the fetch is slow: everyone arrives while it runs
    stores = [process() for _ in range(8)]
    tokens = await asyncio.gather(*(s.get() for s in stores), *(s.get() for s in stores))
    assert platform.calls["cgi-bin/token"] == 1
    assert set(tokens) == {platform.token}


async def test_the_token_is_refreshed_ahead_of_expiry(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    store = process()
    first = await store.get()
    await redis.expire(token_key(prefix, APP_ID), REFRESH_AHEAD_SECONDS + 30)
    assert await store.get() == first  # still comfortably valid
    await redis.expire(token_key(prefix, APP_ID), REFRESH_AHEAD_SECONDS - 30)
    second = await store.get()
    assert second != first and second == platform.token
    assert platform.calls["cgi-bin/token"] == 2


async def test_while_another_process_refreshes_the_old_token_keeps_serving(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    store = process()
    old = await store.get()
    await redis.expire(token_key(prefix, APP_ID), 100)
    await redis.set(lock_key(prefix, APP_ID), "someone-else", px=5000)
    assert await store.get() == old
    assert platform.calls["cgi-bin/token"] == 1


async def test_a_waiter_without_a_token_polls_for_the_new_one(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    store = process()
    await redis.set(lock_key(prefix, APP_ID), "someone-else", px=5000)

    async def other_process_stores_a_token() -> None:
        await asyncio.sleep(0.2)
        await redis.set(token_key(prefix, APP_ID), "TOKEN-FROM-ELSEWHERE", ex=7200)

    waiter = asyncio.create_task(store.get())
    await other_process_stores_a_token()
    assert await waiter == "TOKEN-FROM-ELSEWHERE"
    assert platform.calls["cgi-bin/token"] == 0


async def test_a_waiter_gives_up_when_nobody_delivers(
    process: Callable[..., AccessTokenStore], redis: aioredis.Redis, prefix: str
) -> None:
    store = process(timeout_seconds=0.2)
    await redis.set(lock_key(prefix, APP_ID), "someone-else", px=5000)
    with pytest.raises(WeChatUnavailable) as caught:
        await store.get()
    assert caught.value.reason == "timeout"


async def test_invalidate_drops_only_the_token_that_failed(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    store = process()
    current = await store.get()
    assert await store.invalidate_if_current("AN-OLDER-TOKEN") is False
    assert (await redis.get(token_key(prefix, APP_ID))).decode() == current
    assert await store.invalidate_if_current(current) is True
    assert await redis.exists(token_key(prefix, APP_ID)) == 0
    assert await store.get() != current
    assert platform.calls["cgi-bin/token"] == 2


async def test_stable_token_mode_posts_json_to_stable_token(
    process: Callable[..., AccessTokenStore], platform: Platform, redis: aioredis.Redis, prefix: str
) -> None:
    a, b = process(use_stable_token=True), process(use_stable_token=True)
    token = await a.get()
    assert token.startswith("STABLE")
    await redis.delete(token_key(prefix, APP_ID))
    assert await b.get() == token  # normal mode: the platform hands out the same token again
    assert platform.calls["cgi-bin/stable_token"] == 2
    assert platform.calls["cgi-bin/token"] == 0


async def test_a_refused_fetch_raises_without_the_secret_and_releases_the_lock(
    process: Callable[..., AccessTokenStore], redis: aioredis.Redis, prefix: str
) -> None:
    store = process(app_secret="wrong-secret-value")
    with pytest.raises(WeChatApiError) as caught:
        await store.get()
    assert caught.value.errcode == 40125
    assert "wrong-secret-value" not in str(caught.value)
    assert await redis.exists(lock_key(prefix, APP_ID)) == 0


async def test_without_redis_the_token_store_is_unavailable(process: Callable[..., AccessTokenStore]) -> None:
    store = process(redis_to="redis://127.0.0.1:1/0")
    with pytest.raises(WeChatUnavailable) as caught:
        await store.get()
    assert caught.value.reason == "token_store"
    with pytest.raises(WeChatUnavailable):
        await store.invalidate_if_current("X")
