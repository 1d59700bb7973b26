"""The 工作台's desktop login by QR code, where WeChat's web login does not work: the attempts.

The login page shows a temporary parametric QR code (QR_STR_SCENE, scene ``login_<token>``, five
minutes). An attempt goes ``waiting`` → ``scanned`` (a linked, active member scanned it in WeChat
and was sent a link to confirm, :mod:`.qr_confirm`) → ``confirmed`` or ``refused`` (the member's
answer on the phone) → claimed by the page's poll (:meth:`QrLogins.claim`), which logs the browser
in (:mod:`.login`: a session at once, or an SMS code first) or says the login was refused. A scan
never logs anyone in by itself: whoever shows the QR code to a member must not get the session.

Whoever sees the QR code sees its token, so the token alone is worth nothing: the attempt is bound
to the browser that asked for it by a second secret that only that browser holds (a cookie), and
only a poll carrying it can claim the attempt; only the WeChat identity that scanned can answer it.
The attempt lives in Redis only — it is worthless after five minutes — as a hash under
``{prefix}:staff:qr:<sha256(token)>``: the secret's SHA-256, the state, the expiry (by the service
clock), the page to go to afterwards, what the confirm page shows about the desktop
(:class:`~.qr_device.Desktop`: opened at, address cut in half, browser family), and once scanned the
member and identity that scanned. Every change of state is one Lua script, so two answers or a
scan racing a poll never both win.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
import segno
from redis.exceptions import RedisError

from ..clock import Clock
from ..errors import Unavailable
from .qr_device import Desktop

log = logging.getLogger("wechat_backend.staff.login")

LOGIN_SCENE_PREFIX = "login_"  # an institution's scene is its code: digits, never this
QR_SECONDS = 300  # how long the temporary QR code, and the attempt, stay good
_TTL_SLACK_SECONDS = 60  # Redis keeps an attempt a little past its expiry, then drops it

Answer = Literal["confirmed", "refused"]
Decided = Literal["ok", "expired", "other_identity", "used_up"]

# KEYS[1]: the attempt. ARGV: now, staff id, identity id. {opened, ip, browser} when the attempt
# is now scanned by this member — a waiting one, or one this same member scanned before (the first
# message may not have arrived); false for anything else (unknown, expired, someone else's, answered).
_SCAN = """
local f = redis.call('HMGET', KEYS[1], 'state', 'exp', 'staff', 'identity', 'opened', 'ip', 'browser')
if not f[1] or tonumber(f[2]) <= tonumber(ARGV[1]) then return false end
if f[1] == 'waiting' then
  redis.call('HSET', KEYS[1], 'state', 'scanned', 'staff', ARGV[2], 'identity', ARGV[3])
elseif not (f[1] == 'scanned' and f[3] == ARGV[2] and f[4] == ARGV[3]) then
  return false
end
return {f[5] or '0', f[6] or '', f[7] or ''}
"""

# KEYS[1]: the attempt. ARGV: now, identity id, 'confirmed'|'refused'. The answer is taken only
# from the identity that scanned, once, before the expiry (checked in this order, as confirm_outcome).
_DECIDE = """
local f = redis.call('HMGET', KEYS[1], 'state', 'exp', 'identity')
if not f[1] or tonumber(f[2]) <= tonumber(ARGV[1]) then return 'expired' end
if f[3] ~= ARGV[2] then return 'other_identity' end
if f[1] ~= 'scanned' then return 'used_up' end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
return 'ok'
"""

# KEYS[1]: the attempt. ARGV: the secret's hash, now. {'gone'} (unknown, expired, or another
# browser's), {'waiting'}, {'scanned'}, {'refused'}, or {'confirmed', staff, identity, next}; the
# attempt is used up by the last two.
_CLAIM = """
local f = redis.call('HMGET', KEYS[1], 'secret', 'state', 'exp', 'staff', 'identity', 'next')
if not f[1] or f[1] ~= ARGV[1] then return {'gone'} end
if tonumber(f[3]) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {'gone'}
end
if f[2] == 'refused' then
  redis.call('DEL', KEYS[1])
  return {'refused'}
end
if f[2] ~= 'confirmed' then return {f[2]} end
redis.call('DEL', KEYS[1])
return {'confirmed', f[4], f[5], f[6]}
"""


@dataclass(frozen=True)
class QrAttempt:
    """A new attempt: the token goes into the QR code's scene, the secret into this browser's cookie."""

    token: str
    secret: str


@dataclass(frozen=True)
class Pending:
    """An unexpired attempt as the confirm page sees it; ``identity_id`` is None until scanned."""

    state: str
    staff_id: int | None
    identity_id: int | None
    desktop: Desktop


@dataclass(frozen=True)
class Confirmed:
    """A claimed, confirmed attempt: who scanned and confirmed, and where the page goes afterwards."""

    staff_id: int
    identity_id: int
    next_path: str


def is_login_scene(scene: str | None) -> bool:
    return bool(scene) and scene.startswith(LOGIN_SCENE_PREFIX)  # type: ignore[union-attr]


def login_scene(token: str) -> str:
    return LOGIN_SCENE_PREFIX + token


def token_of(scene: str) -> str:
    return scene[len(LOGIN_SCENE_PREFIX) :]


def qr_image(url: str) -> str:
    """The QR code of ``url`` as an SVG ``data:`` URI (an ``<img>`` the CSP allows; no script)."""
    return segno.make(url, error="m").svg_data_uri(scale=6, border=2)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _well_formed(token: object) -> bool:
    return isinstance(token, str) and 1 <= len(token) <= 64


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QrLogins:
    """The attempts in Redis. Redis not answering is :class:`Unavailable` (no login without it)."""

    def __init__(self, redis: aioredis.Redis | None, key_prefix: str, clock: Clock) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._clock = clock
        self._scan = redis.register_script(_SCAN) if redis is not None else None
        self._decide = redis.register_script(_DECIDE) if redis is not None else None
        self._claim = redis.register_script(_CLAIM) if redis is not None else None

    def key(self, token: str) -> str:
        return f"{self._prefix}:staff:qr:{_digest(token)[:32]}"

    async def create(self, next_path: str, desktop: Desktop) -> QrAttempt:
        attempt = QrAttempt(secrets.token_urlsafe(16), secrets.token_urlsafe(32))
        fields = {
            "secret": _digest(attempt.secret),
            "state": "waiting",
            "exp": repr(self._clock.time() + QR_SECONDS),
            "next": next_path,
            "opened": repr(desktop.opened_at),
            "ip": desktop.ip,
            "browser": desktop.browser,
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

    async def scan(self, token: str, staff_id: int, identity_id: int) -> Desktop | None:
        """The linked member ``staff_id`` scanned the code of ``token``: the desktop to describe in
        the message, or None when the attempt cannot be scanned (see ``_SCAN``)."""
        if not _well_formed(token):
            return None
        out = await self._run(self._scan, token, [repr(self._clock.time()), staff_id, identity_id])
        if not out:
            return None
        opened, ip, browser = (_text(v) for v in out)
        return Desktop(float(opened), ip, browser)

    async def peek(self, token: str) -> Pending | None:
        """The unexpired attempt of ``token`` (for the confirm page), or None."""
        if not _well_formed(token):
            return None
        names = ("state", "exp", "staff", "identity", "opened", "ip", "browser")
        try:
            if self._redis is None:
                raise RedisError("no redis")
            values = await self._redis.hmget(self.key(token), names)
        except RedisError:
            log.warning("staff QR login: Redis unavailable")
            raise Unavailable() from None
        f = {n: _text(v) if v is not None else None for n, v in zip(names, values, strict=True)}
        if f["state"] is None or float(f["exp"] or 0) <= self._clock.time():
            return None
        desktop = Desktop(float(f["opened"] or 0), f["ip"] or "", f["browser"] or "")
        staff, identity = f["staff"], f["identity"]
        return Pending(f["state"], int(staff) if staff else None, int(identity) if identity else None, desktop)

    async def decide(self, token: str, identity_id: int, answer: Answer) -> Decided:
        """The member's answer on the phone, taken once from the identity that scanned."""
        if not _well_formed(token):
            return "expired"
        out = await self._run(self._decide, token, [repr(self._clock.time()), identity_id, answer])
        return _text(out)  # type: ignore[return-value]

    async def claim(self, token: str, secret: str) -> Confirmed | str:
        """The confirmed attempt, used up, when this browser's attempt was confirmed on the phone;
        else ``waiting``, ``scanned`` (not answered yet), ``refused`` (used up too) or ``gone``
        (unknown, expired, used, or the token of another browser's attempt)."""
        if not (_well_formed(token) and secret):
            return "gone"
        values = [_text(v) for v in await self._run(self._claim, token, [_digest(secret), repr(self._clock.time())])]
        if values[0] != "confirmed":
            return values[0]
        return Confirmed(int(values[1]), int(values[2]), values[3])

    async def _run(self, script: object, token: str, args: list[object]) -> object:
        if script is None:
            raise Unavailable()
        try:
            return await script(keys=[self.key(token)], args=args)  # type: ignore[operator]
        except RedisError:
            log.warning("staff QR login: Redis unavailable")
            raise Unavailable() from None
