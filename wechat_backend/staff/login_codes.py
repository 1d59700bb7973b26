"""The 工作台 login's SMS codes: the binding flow's rules (six digits from the CSPRNG, ``[limits]``
code_ttl_seconds and code_max_tries, single use), kept in Redis — a code is worthless after five
minutes and a lost one is simply asked for again.

A challenge is named by a random 128-bit id that only the browser which asked holds (a cookie),
never a URL. Its hash ``{prefix}:staff:code:<sha256(id)>`` keeps the member, the WeChat identity
the login is for, how it came (``wechat`` or ``qr``), the page to go to afterwards, the masked
phone, the expiry (by the service clock), the tries, and only a keyed MAC of the code. Every try is
counted in Redis before the code is compared, so concurrent guesses never share a count.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..binding.rules import new_code
from ..clock import Clock
from ..config import LimitsSettings
from ..crypto import KeyRing
from ..errors import Unavailable

log = logging.getLogger("wechat_backend.staff.login")

_TTL_SLACK_SECONDS = 60
_FIELDS = ("code", "exp", "staff", "identity", "via", "next", "phone")

# KEYS[1]: the challenge. ARGV: max tries. False when there is none; else the try's number and the
# fields. A try past the limit drops the challenge without looking at the code.
_TRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {tries}
end
local out = {tries}
for _, v in ipairs(redis.call('HMGET', KEYS[1], 'code', 'exp', 'staff', 'identity', 'via', 'next', 'phone')) do
  table.insert(out, v)
end
return out
"""

Via = Literal["wechat", "qr"]
Outcome = Literal["ok", "wrong_code", "locked", "expired"]


@dataclass(frozen=True)
class Challenge:
    """What a code, once verified, logs in: the member, for which WeChat identity, and how."""

    staff_id: int
    identity_id: int
    via: Via
    next_path: str
    phone_mask: str


@dataclass(frozen=True)
class Checked:
    outcome: Outcome
    challenge: Challenge | None = None
    tries_left: int = 0


class LoginCodes:
    def __init__(
        self, redis: aioredis.Redis | None, keyring: KeyRing, limits: LimitsSettings, clock: Clock, *, key_prefix: str
    ) -> None:
        self._redis = redis
        self._keys = keyring
        self._limits = limits
        self._clock = clock
        self._prefix = key_prefix
        self._try = redis.register_script(_TRY) if redis is not None else None

    def key(self, challenge_id: str) -> str:
        return f"{self._prefix}:staff:code:{hashlib.sha256(challenge_id.encode()).hexdigest()[:32]}"

    def _mac(self, challenge_id: str, code: str) -> str:
        return self._keys.mac("staff_code", f"{challenge_id}:{code}").hex()

    async def issue(self, challenge: Challenge, *, replaces: str | None = None) -> tuple[str, str]:
        """A new challenge and its code: ``(challenge id, code)``. The one it replaces (a resend)
        stops working at once."""
        challenge_id, code = secrets.token_urlsafe(16), new_code()
        ttl = self._limits.code_ttl_seconds
        fields = {
            "code": self._mac(challenge_id, code),
            "exp": repr(self._clock.time() + ttl),
            "staff": challenge.staff_id,
            "identity": challenge.identity_id,
            "via": challenge.via,
            "next": challenge.next_path,
            "phone": challenge.phone_mask,
            "tries": 0,
        }
        try:
            if self._redis is None:
                raise RedisError("no redis")
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key(challenge_id), mapping=fields)
                pipe.expire(self.key(challenge_id), ttl + _TTL_SLACK_SECONDS)
                if replaces:
                    pipe.delete(self.key(replaces))
                await pipe.execute()
        except RedisError:
            log.warning("staff login codes: Redis unavailable")
            raise Unavailable() from None
        return challenge_id, code

    async def peek(self, challenge_id: str | None) -> Challenge | None:
        """The live challenge (for the code page and a resend), or None."""
        if not challenge_id or self._redis is None:
            return None
        try:
            values = await self._redis.hmget(self.key(challenge_id), list(_FIELDS))
        except RedisError:
            raise Unavailable() from None
        fields = dict(zip(_FIELDS, values, strict=True))
        if fields["code"] is None or float(fields["exp"]) <= self._clock.time():
            return None
        return _challenge(fields)

    async def drop(self, challenge_id: str | None) -> None:
        if challenge_id and self._redis is not None:
            try:
                await self._redis.delete(self.key(challenge_id))
            except RedisError:
                raise Unavailable() from None

    async def check(self, challenge_id: str | None, code: str) -> Checked:
        """Count a try and compare: ``ok`` (the challenge is used up), ``wrong_code`` (with the
        tries left), ``locked`` (the last try was wrong, or none are left) or ``expired`` (none,
        timed out, or used)."""
        if not challenge_id:
            return Checked("expired")
        if self._try is None:
            raise Unavailable()
        max_tries = self._limits.code_max_tries
        try:
            out = await self._try(keys=[self.key(challenge_id)], args=[max_tries])
        except RedisError:
            log.warning("staff login codes: Redis unavailable")
            raise Unavailable() from None
        if not out:
            return Checked("expired")
        tries = int(out[0])
        if tries > max_tries:
            return Checked("locked")
        fields = dict(zip(_FIELDS, out[1:], strict=True))
        if float(fields["exp"]) <= self._clock.time():
            await self.drop(challenge_id)
            return Checked("expired")
        right = hmac.compare_digest(_text(fields["code"]), self._mac(challenge_id, code))
        if right:
            # Single use: of two right answers at once, only the one that deletes it logs in.
            try:
                deleted = await self._redis.delete(self.key(challenge_id))  # type: ignore[union-attr]
            except RedisError:
                raise Unavailable() from None
            return Checked("ok", _challenge(fields)) if deleted else Checked("expired")
        if tries >= max_tries:
            await self.drop(challenge_id)
            return Checked("locked")
        return Checked("wrong_code", tries_left=max_tries - tries)


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _challenge(fields: dict[str, bytes | str | None]) -> Challenge:
    via = _text(fields["via"])
    return Challenge(
        staff_id=int(_text(fields["staff"])),
        identity_id=int(_text(fields["identity"])),
        via="qr" if via == "qr" else "wechat",
        next_path=_text(fields["next"]),
        phone_mask=_text(fields["phone"]),
    )
