"""Server-side sessions: random 128-bit ids, idle and absolute timeouts on the injectable clock,
closing, and nobody logged in when Redis does not answer."""

from __future__ import annotations

import re
import secrets

import pytest
import redis.asyncio as aioredis

from wechat_backend.clock import FixedClock
from wechat_backend.config import SessionSettings
from wechat_backend.errors import Unavailable
from wechat_backend.web_sessions import SessionStore, session_key


@pytest.fixture
def store(redis: aioredis.Redis, clock: FixedClock, prefix: str) -> SessionStore:
    return SessionStore(SessionSettings(), redis, clock, key_prefix=prefix)


async def test_a_session_id_is_128_random_bits_and_loads_back(store: SessionStore, clock: FixedClock) -> None:
    ids = {await store.open(7) for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    session_id = ids.pop()
    session = await store.load(session_id)
    assert session is not None
    assert (session.id, session.identity_id, session.kind) == (session_id, 7, "resident")
    assert session.created_at == session.last_seen_at == clock.now()


async def test_the_redis_key_does_not_reveal_the_session_id(
    store: SessionStore, redis: aioredis.Redis, prefix: str
) -> None:
    session_id = await store.open(7)
    keys = [k.decode() async for k in redis.scan_iter(f"{prefix}:*")]
    assert keys == [session_key(prefix, session_id)]
    assert session_id not in keys[0]
    assert 0 < await redis.ttl(keys[0]) <= 30 * 60 + 60  # abandoned sessions are cleared away


async def test_a_resident_session_ends_after_30_idle_minutes(store: SessionStore, clock: FixedClock) -> None:
    session_id = await store.open(7)
    clock.advance(minutes=29)
    assert await store.load(session_id) is not None
    clock.advance(minutes=29)  # 58 minutes after login, 29 after the last request: still on
    assert await store.load(session_id) is not None
    clock.advance(minutes=30)
    assert await store.load(session_id) is None
    clock.advance(minutes=-30)  # and it is gone for good, not just late
    assert await store.load(session_id) is None


async def test_a_session_ends_12_hours_after_login_however_busy(store: SessionStore, clock: FixedClock) -> None:
    session_id = await store.open(7)
    for _ in range(35):  # 11 h 40 min of requests every 20 minutes
        clock.advance(minutes=20)
        assert await store.load(session_id) is not None
    clock.advance(minutes=20)
    assert await store.load(session_id) is None


async def test_staff_sessions_idle_out_after_15_minutes(store: SessionStore, clock: FixedClock) -> None:
    session_id = await store.open(3, "staff")
    clock.advance(minutes=14)
    session = await store.load(session_id)
    assert session is not None and session.kind == "staff"
    clock.advance(minutes=15)
    assert await store.load(session_id) is None


async def test_timeouts_come_from_the_session_settings(redis: aioredis.Redis, clock: FixedClock, prefix: str) -> None:
    store = SessionStore(SessionSettings(idle_minutes=5, absolute_hours=1), redis, clock, key_prefix=prefix)
    session_id = await store.open(7)
    clock.advance(minutes=4)
    assert await store.load(session_id) is not None
    clock.advance(minutes=5)
    assert await store.load(session_id) is None


async def test_a_closed_session_is_gone(store: SessionStore) -> None:
    session_id = await store.open(7)
    await store.close(session_id)
    assert await store.load(session_id) is None


@pytest.mark.parametrize("session_id", ["", "abc", "0" * 31, "G" * 32, "0" * 33, "../../x", "0" * 32 + "\n"])
async def test_malformed_or_unknown_ids_are_not_logged_in(store: SessionStore, session_id: str) -> None:
    assert await store.load(session_id) is None
    assert await store.load(secrets.token_hex(16)) is None


async def test_without_redis_sessions_are_unavailable_not_logged_out(clock: FixedClock) -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1.0)
    store = SessionStore(SessionSettings(), client, clock, key_prefix="t")
    try:
        with pytest.raises(Unavailable):
            await store.load(secrets.token_hex(16))
        assert await store.load("malformed") is None  # never reaches Redis
        with pytest.raises(Unavailable):
            await store.open(7)
        with pytest.raises(Unavailable):
            await store.close(secrets.token_hex(16))
    finally:
        await client.aclose()


async def test_requests_every_half_minute_keep_a_session_alive_past_the_idle_limit(
    store: SessionStore, clock: FixedClock, redis: aioredis.Redis
) -> None:
    session_id = await store.open(7)
    writes_before = (await redis.info("stats"))["total_commands_processed"]
    for _ in range(80):  # 40 minutes of activity, one request every 30 s
        clock.advance(seconds=30)
        assert await store.load(session_id) is not None
    commands = (await redis.info("stats"))["total_commands_processed"] - writes_before
    assert commands < 80 * 2  # the idle timer is written about once a minute, not on every load
    clock.advance(minutes=29)
    assert await store.load(session_id) is not None
    clock.advance(minutes=31)
    assert await store.load(session_id) is None
