"""Official-account web login (网页授权, ``snsapi_base``) for the resident H5 pages.

``start`` stores where to go afterwards under a random single-use ``state`` (letters and digits, as
WeChat requires, at most 128 of them) and returns the authorize URL; ``finish`` takes the state
back (GETDEL: a state works once), exchanges the code for the openid, upserts the identity and opens
a server-side session. ``snsapi_base`` is silent inside WeChat, which is why sessions are short.

官方文档：https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..config import Settings
from ..errors import BadInput, NotLoggedIn, Unavailable
from ..identities import IdentityService, IdentityView
from ..web_sessions import SessionStore
from .api import WeChatApi, WeChatApiError, WeChatUnavailable

log = logging.getLogger("wechat_backend.wechat")

# Where a login lands when no (acceptable) next path was given: the resident home page's route.
DEFAULT_NEXT = "/r/home"
# A state lives long enough for WeChat's authorize round trip (its code itself lives 5 minutes).
STATE_TTL_SECONDS = 600
MAX_NEXT_LENGTH = 1024
_STATE = re.compile(r"[A-Za-z0-9]{1,128}")
# 40029 invalid code, 40163 code already used: the person simply has to come in again.
_CODE_ERRORS = frozenset({40029, 40163})


def state_key(prefix: str, state: str) -> str:
    return f"{prefix}:oauth:state:{state}"


def safe_next(path: str | None) -> str:
    """``path`` if it is a local path on this site, else :data:`DEFAULT_NEXT`: it must start with
    one "/", carry no scheme, host or backslash, no control characters, and not lead back into the
    login flow itself."""
    if not path or len(path) > MAX_NEXT_LENGTH or not path.startswith("/") or path.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return DEFAULT_NEXT
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or parts.path.startswith("/oauth/"):
        return DEFAULT_NEXT
    return path


@dataclass(frozen=True)
class OAuthLogin:
    """A finished login: who it is, the new session's id (for the cookie) and where to go next."""

    identity: IdentityView
    session_id: str
    next_path: str


class OAuthService:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        api: WeChatApi,
        identities: IdentityService,
        sessions: SessionStore,
    ) -> None:
        self._app_id = settings.wechat.app_id
        self._open_base_url = settings.wechat.open_base_url.rstrip("/") + "/"
        self._public_base_url = settings.server.public_base_url.rstrip("/")
        self._prefix = settings.redis.key_prefix
        self._redis = redis
        self._api = api
        self._identities = identities
        self._sessions = sessions

    async def start(self, next_path: str | None, *, callback_path: str) -> str:
        """The authorize URL to send the browser to; ``next_path`` is kept under a fresh state."""
        state = secrets.token_hex(16)
        try:
            await self._redis.set(state_key(self._prefix, state), safe_next(next_path), ex=STATE_TTL_SECONDS)
        except RedisError:
            raise Unavailable() from None
        return self.authorize_url(state, callback_path=callback_path)

    def authorize_url(self, state: str, *, callback_path: str) -> str:
        query = urlencode(
            {
                "appid": self._app_id,
                "redirect_uri": self._public_base_url + callback_path,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            },
            quote_via=quote,
        )
        return f"{self._open_base_url}connect/oauth2/authorize?{query}#wechat_redirect"

    async def finish(self, code: str, state: str, *, previous_session_id: str | None = None) -> OAuthLogin:
        """Take the state back (once), exchange the code, upsert the identity and open a session.
        A session the browser already had is closed: a login always gets a new session id."""
        if not code or not _STATE.fullmatch(state or ""):
            raise NotLoggedIn()
        try:
            stored = await self._redis.getdel(state_key(self._prefix, state))
        except RedisError:
            raise Unavailable() from None
        if stored is None:
            log.info("oauth callback with an unknown or used state")
            raise NotLoggedIn()
        next_path = safe_next(stored.decode() if isinstance(stored, bytes) else str(stored))
        try:
            grant = await self._api.oauth_exchange(code)
        except WeChatApiError as exc:
            if exc.errcode in _CODE_ERRORS:
                raise NotLoggedIn() from None
            raise Unavailable() from None
        except WeChatUnavailable:
            raise Unavailable() from None
        if grant.snapshot_user:
            # 快照页模式：a virtual openid, not the person; they must open the page in WeChat proper.
            raise NotLoggedIn()
        identity = await self._identities.upsert("oa", grant.openid, unionid=grant.unionid)
        if identity.unionid is None:
            identity = await self._link_unionid(identity)
        if previous_session_id:
            await self._sessions.close(previous_session_id)
        session_id = await self._sessions.open(identity.id, "resident")
        return OAuthLogin(identity=identity, session_id=session_id, next_path=next_path)

    async def _link_unionid(self, identity: IdentityView) -> IdentityView:
        """Ask the platform for a follower's unionid, so their mini-program identity links to this
        one. Best effort: a login never fails for it."""
        try:
            unionid = await self._api.user_unionid(identity.openid)
        except (WeChatApiError, WeChatUnavailable) as exc:
            log.info("unionid lookup skipped: %s", type(exc).__name__)
            return identity
        if unionid is None:
            return identity
        return await self._identities.upsert("oa", identity.openid, unionid=unionid)


class MiniProgramLogin:
    """``POST /api/v1/mp/login {code}``: ``jscode2session``, the mini-program identity (linked to
    the official-account one by unionid when the platform gives it) and a bearer session. The
    ``session_key`` is neither kept nor logged."""

    def __init__(self, api: WeChatApi, identities: IdentityService, sessions: SessionStore) -> None:
        self._api = api
        self._identities = identities
        self._sessions = sessions

    async def login(self, code: str) -> str:
        if not isinstance(code, str) or not _MP_CODE.fullmatch(code):
            raise BadInput("code", "登录凭证无效，请重新打开小程序")
        try:
            grant = await self._api.code2session(code)
        except WeChatApiError as exc:
            if exc.errcode in _CODE_ERRORS:
                raise NotLoggedIn("登录凭证无效或已使用，请重新打开小程序") from None
            raise Unavailable() from None
        except WeChatUnavailable:
            raise Unavailable() from None
        identity = await self._identities.upsert("mp", grant.openid, unionid=grant.unionid)
        return await self._sessions.open(identity.id, "resident")


_MP_CODE = re.compile(r"[0-9A-Za-z_-]{1,128}")
