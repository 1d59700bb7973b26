"""Server-side login sessions in Redis. The cookie (or Bearer token) carries only a random 128-bit id.

Timeouts follow ASVS L2 (``[session]``): a resident session ends after ``idle_minutes`` without a
request (30 by default) and in any case ``absolute_hours`` after login (12); staff sessions idle out
after ``staff_idle_minutes`` (15). Both limits are checked with the injectable clock on every load;
the Redis TTL only clears abandoned sessions away. The key holds a SHA-256 of the id, so reading
Redis does not hand out live session ids. If Redis is down nobody is logged in: pages and the API
answer 503 (fail closed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .clock import Clock
from .config import SessionSettings
from .errors import Unavailable

log = logging.getLogger("wechat_backend.sessions")

SessionKind = Literal["resident", "staff"]
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
# Redis keeps an abandoned session a little past its idle limit, then drops it.
_TTL_SLACK_SECONDS = 60


TOUCH_EVERY = dt.timedelta(seconds=60)


def session_key(prefix: str, session_id: str) -> str:
    digest = hashlib.sha256(session_id.encode("ascii")).hexdigest()[:32]
    return f"{prefix}:session:{digest}"


@dataclass(frozen=True)
class Session:
    id: str
    identity_id: int
    kind: SessionKind
    created_at: dt.datetime
    last_seen_at: dt.datetime


class SessionStore:
    def __init__(self, settings: SessionSettings, redis: aioredis.Redis, clock: Clock, *, key_prefix: str) -> None:
        self._settings = settings
        self._redis = redis
        self._clock = clock
        self._prefix = key_prefix

    def idle_limit(self, kind: SessionKind) -> dt.timedelta:
        minutes = self._settings.staff_idle_minutes if kind == "staff" else self._settings.idle_minutes
        return dt.timedelta(minutes=minutes)

    @property
    def absolute_limit(self) -> dt.timedelta:
        return dt.timedelta(hours=self._settings.absolute_hours)

    async def open(self, identity_id: int, kind: SessionKind = "resident") -> str:
        """A new session; returns its id (``secrets.token_hex(16)``: 128 bits from the CSPRNG)."""
        session_id = secrets.token_hex(16)
        now = self._clock.now()
        try:
            await self._redis.set(
                session_key(self._prefix, session_id),
                _dump(identity_id, kind, now, now),
                ex=self._ttl(kind, now, now),
            )
        except RedisError:
            log.warning("session store unavailable: a login could not be recorded")
            raise Unavailable() from None
        return session_id

    async def load(self, session_id: str) -> Session | None:
        """The live session with this id, its idle timer restarted; None when unknown, expired or
        malformed. Redis not answering raises :class:`Unavailable`."""
        if not _SESSION_ID.fullmatch(session_id or ""):
            return None
        key = session_key(self._prefix, session_id)
        try:
            raw = await self._redis.get(key)
            if raw is None:
                return None
            session = _load(session_id, raw)
            now = self._clock.now()
            if session is None or self._expired(session, now):
                await self._redis.delete(key)
                return None
            # The idle timer moves in steps of TOUCH_EVERY: a page's several requests cost one
            # Redis read each, not a read and a write. XX: a session closed meanwhile stays closed.
            if now - session.last_seen_at >= TOUCH_EVERY:
                await self._redis.set(
                    key,
                    _dump(session.identity_id, session.kind, session.created_at, now),
                    ex=self._ttl(session.kind, session.created_at, now),
                    xx=True,
                )
            else:
                now = session.last_seen_at
        except RedisError:
            # 503, not "log in again": a login would fail the same way and loop through WeChat.
            log.warning("session store unavailable: answering 503")
            raise Unavailable() from None
        return Session(session.id, session.identity_id, session.kind, session.created_at, now)

    async def renew(self, session: Session) -> str:
        """The same login under a new id; the old id stops working at once. The absolute limit
        still counts from the original login."""
        new_id = secrets.token_hex(16)
        now = self._clock.now()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    session_key(self._prefix, new_id),
                    _dump(session.identity_id, session.kind, session.created_at, now),
                    ex=self._ttl(session.kind, session.created_at, now),
                )
                pipe.delete(session_key(self._prefix, session.id))
                await pipe.execute()
        except RedisError:
            log.warning("session store unavailable: a session could not be renewed")
            raise Unavailable() from None
        return new_id

    async def close(self, session_id: str) -> None:
        """End the session (logout, or a new login replacing it)."""
        if not _SESSION_ID.fullmatch(session_id or ""):
            return
        try:
            await self._redis.delete(session_key(self._prefix, session_id))
        except RedisError:
            log.warning("session store unavailable: a session could not be closed")
            raise Unavailable() from None

    def _expired(self, session: Session, now: dt.datetime) -> bool:
        return (
            now - session.last_seen_at >= self.idle_limit(session.kind)
            or now - session.created_at >= self.absolute_limit
        )

    def _ttl(self, kind: SessionKind, created_at: dt.datetime, now: dt.datetime) -> int:
        left = min(self.idle_limit(kind), created_at + self.absolute_limit - now)
        return max(1, int(left.total_seconds()) + _TTL_SLACK_SECONDS)


def _dump(identity_id: int, kind: SessionKind, created_at: dt.datetime, last_seen_at: dt.datetime) -> str:
    return json.dumps(
        {"i": identity_id, "k": kind, "c": created_at.timestamp(), "s": last_seen_at.timestamp()},
        separators=(",", ":"),
    )


def _load(session_id: str, raw: bytes | str) -> Session | None:
    try:
        data = json.loads(raw)
        kind = data["k"]
        if kind not in ("resident", "staff"):
            return None
        return Session(
            id=session_id,
            identity_id=int(data["i"]),
            kind=kind,
            created_at=dt.datetime.fromtimestamp(float(data["c"]), dt.UTC),
            last_seen_at=dt.datetime.fromtimestamp(float(data["s"]), dt.UTC),
        )
    except (ValueError, KeyError, TypeError):
        return None
