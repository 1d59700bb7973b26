"""The 工作台's desktop login by QR code, where WeChat's web login does not work.

The login page shows a temporary parametric QR code (QR_STR_SCENE, scene ``login_<token>``, five
minutes). The staff member whose WeChat identity is linked scans it in WeChat; the SCAN event (or
the subscribe event, for someone not yet following) reaches ``/wechat`` and :func:`confirm_scan`
marks the attempt scanned by that member. The page polls; its poll :meth:`QrLogins.claim`s the scan
and the login goes on there (a session at once, or an SMS code first).

Whoever sees the QR code sees its token, so the token alone is worth nothing: the attempt is bound
to the browser that asked for it by a second secret that only that browser holds (a cookie), and
only a poll carrying it can claim the scan. The attempt lives in Redis only — it is worthless after
five minutes — as a hash under ``{prefix}:staff:qr:<sha256(token)>``: the secret's SHA-256, the
state (``waiting``, then ``scanned``), the member and identity that scanned, the expiry (by the
service clock) and the page to go to afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis
import segno
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock
from ..db.models import Staff
from ..errors import Unavailable

log = logging.getLogger("wechat_backend.staff.login")

LOGIN_SCENE_PREFIX = "login_"  # an institution's scene is its code: digits, never this
QR_SECONDS = 300  # how long the temporary QR code, and the attempt, stay good
_TTL_SLACK_SECONDS = 60  # Redis keeps an attempt a little past its expiry, then drops it

# What the person who scanned reads in WeChat.
CONFIRMED = "已确认登录工作台（电脑端），请回到电脑上继续。如不是您本人在登录，请立即联系县级管理员。"
NOT_STAFF = (
    "您的微信未绑定在用的工作人员账号，不能用它登录工作台。"
    "工作人员请先在手机微信中点公众号菜单“工作台”，用登记的手机号验证一次。"
)
EXPIRED = "这个登录二维码已过期或已使用，请在电脑上刷新登录页，再扫描新的二维码。"
NOT_NOW = "暂时无法确认登录，请稍后在电脑上刷新登录页重试。"

# KEYS[1]: the attempt. ARGV: now, staff id, identity id. 1 when a waiting, unexpired attempt is
# now scanned by this member; 0 for anything else (unknown, expired, already scanned).
_CONFIRM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'exp')) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'scanned', 'staff', ARGV[2], 'identity', ARGV[3])
return 1
"""

# KEYS[1]: the attempt. ARGV: the secret's hash, now. {'gone'} (unknown, expired, or another
# browser's), {'waiting'}, or {'scanned', staff, identity, next} — the attempt is used up then.
_CLAIM = """
local f = redis.call('HMGET', KEYS[1], 'secret', 'state', 'exp', 'staff', 'identity', 'next')
if not f[1] or f[1] ~= ARGV[1] then return {'gone'} end
if tonumber(f[3]) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {'gone'}
end
if f[2] ~= 'scanned' then return {'waiting'} end
redis.call('DEL', KEYS[1])
return {'scanned', f[4], f[5], f[6]}
"""


@dataclass(frozen=True)
class QrAttempt:
    """A new attempt: the token goes into the QR code's scene, the secret into this browser's cookie."""

    token: str
    secret: str


@dataclass(frozen=True)
class Scanned:
    """A claimed scan: who scanned, and where the page goes afterwards."""

    staff_id: int
    identity_id: int
    next_path: str


def is_login_scene(scene: str | None) -> bool:
    return bool(scene) and scene.startswith(LOGIN_SCENE_PREFIX)  # type: ignore[union-attr]


def login_scene(token: str) -> str:
    return LOGIN_SCENE_PREFIX + token


def qr_image(url: str) -> str:
    """The QR code of ``url`` as an SVG ``data:`` URI (an ``<img>`` the CSP allows; no script)."""
    return segno.make(url, error="m").svg_data_uri(scale=6, border=2)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class QrLogins:
    """The attempts in Redis. Redis not answering is :class:`Unavailable` (no login without it)."""

    def __init__(self, redis: aioredis.Redis | None, key_prefix: str, clock: Clock) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._clock = clock
        self._confirm = redis.register_script(_CONFIRM) if redis is not None else None
        self._claim = redis.register_script(_CLAIM) if redis is not None else None

    def key(self, token: str) -> str:
        return f"{self._prefix}:staff:qr:{_digest(token)[:32]}"

    async def create(self, next_path: str) -> QrAttempt:
        attempt = QrAttempt(secrets.token_urlsafe(16), secrets.token_urlsafe(32))
        fields = {
            "secret": _digest(attempt.secret),
            "state": "waiting",
            "exp": repr(self._clock.time() + QR_SECONDS),
            "next": next_path,
        }
        try:
            if self._redis is None:
                raise RedisError("no redis")
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key(attempt.token), mapping=fields)
                pipe.expire(self.key(attempt.token), QR_SECONDS + _TTL_SLACK_SECONDS)
                await pipe.execute()
        except RedisError:
            log.warning("staff QR login: Redis unavailable")
            raise Unavailable() from None
        return attempt

    async def confirm(self, token: str, staff_id: int, identity_id: int) -> bool:
        """The linked member ``staff_id`` scanned the code of ``token``."""
        if self._confirm is None:
            raise Unavailable()
        try:
            done = await self._confirm(keys=[self.key(token)], args=[repr(self._clock.time()), staff_id, identity_id])
        except RedisError:
            log.warning("staff QR login: Redis unavailable")
            raise Unavailable() from None
        return int(done) == 1

    async def claim(self, token: str, secret: str) -> Scanned | str:
        """The scan, used up, when this browser's attempt was scanned; else ``waiting`` or
        ``gone`` (unknown, expired, used, or the token of another browser's attempt)."""
        if not (isinstance(token, str) and 1 <= len(token) <= 64 and secret):
            return "gone"
        if self._claim is None:
            raise Unavailable()
        try:
            out = await self._claim(keys=[self.key(token)], args=[_digest(secret), repr(self._clock.time())])
        except RedisError:
            log.warning("staff QR login: Redis unavailable")
            raise Unavailable() from None
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in out]
        if values[0] != "scanned":
            return values[0]
        return Scanned(int(values[1]), int(values[2]), values[3])


async def confirm_scan(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis | None,
    key_prefix: str,
    clock: Clock,
    identity_id: int,
    scene: str,
) -> str:
    """A scan of a login QR code (from the callback): confirmed when the identity is linked to an
    active staff member. Returns the text the scanner reads in WeChat. Never an institution's follow."""
    async with sessions() as s:
        staff_id = await s.scalar(select(Staff.id).where(Staff.identity_id == identity_id, Staff.active))
    if staff_id is None:
        return NOT_STAFF
    token = scene[len(LOGIN_SCENE_PREFIX) :]
    try:
        confirmed = await QrLogins(redis, key_prefix, clock).confirm(token, staff_id, identity_id)
    except Unavailable:
        return NOT_NOW
    return CONFIRMED if confirmed else EXPIRED
