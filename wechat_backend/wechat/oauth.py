"""Official-account web login (网页授权, ``snsapi_base``) for the resident H5 pages.

``start`` makes a random ``state`` (32 hex characters: WeChat allows at most 128 letters and
digits) and the authorize URL; the handler keeps ``{state, next, issued_at}`` in a signed cookie
(``wb_oauth``) on the browser that started. ``finish`` accepts a callback only from that browser:
the cookie's state must equal the query's before anything is spent (login CSRF: otherwise an
attacker's own ``code`` and ``state``, sent to a victim as a link, would log her in as him and she
would bind her archive to his WeChat). A state is then spent once (a small marker in Redis), the
code exchanged for the openid, the identity upserted and a server-side session opened.
``snsapi_base`` is silent inside WeChat, which is why sessions are short.

官方文档：https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..client_ip import rate_subject
from ..clock import Clock
from ..config import Settings
from ..errors import BadInput, NotLoggedIn, Unavailable
from ..identities import IdentityService, IdentityView
from ..rate_limits import RateLimits, Window
from ..web_sessions import SessionStore
from .api import WeChatApi, WeChatApiError, WeChatUnavailable

log = logging.getLogger("wechat_backend.wechat")

# Where a login lands when no (acceptable) next path was given: the resident home page's route.
DEFAULT_NEXT = "/r/home"
# A login started longer ago than this is not finished (WeChat's code itself lives 5 minutes).
STATE_TTL_SECONDS = 600
# ``next`` rides in the login cookie: a page path, never a document.
MAX_NEXT_LENGTH = 512
# Callbacks per address: generous, since a carrier's NAT puts many residents behind one address.
CALLBACK_WINDOWS = ((60, 120), (3600, 1200))
_STATE = re.compile(r"[0-9a-f]{32}")
# 40029 invalid code, 40163 code already used: the person simply has to come in again.
_CODE_ERRORS = frozenset({40029, 40163})


def spent_key(prefix: str, state: str) -> str:
    """Marks a state whose callback was taken: a login cookie works once."""
    return f"{prefix}:oauth:spent:{state}"


def callback_window_keys(prefix: str, address: str) -> list[str]:
    subject = rate_subject(address)
    return [f"{prefix}:oauth:cb:{seconds}:{subject}" for seconds, _ in CALLBACK_WINDOWS]


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
class LoginStart:
    """A login under way, as the ``wb_oauth`` cookie keeps it (signed by the handler)."""

    state: str
    next_path: str
    issued_at: int

    def cookie_value(self) -> str:
        return json.dumps({"s": self.state, "n": self.next_path, "t": self.issued_at}, separators=(",", ":"))

    @classmethod
    def from_cookie(cls, value: bytes | str | None) -> LoginStart | None:
        """The login a (signature-checked) cookie holds; None for anything else."""
        if not value:
            return None
        try:
            data = json.loads(value)
            start = cls(str(data["s"]), safe_next(str(data["n"])), int(data["t"]))
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        return start if _STATE.fullmatch(start.state) else None


def matching_start(cookie: LoginStart | None, state: str, now: float) -> LoginStart | None:
    """The started login this callback finishes: the cookie's own state, still fresh. Anything
    else (no cookie, another browser's state, an old one) is None and spends nothing."""
    if cookie is None or not _STATE.fullmatch(state or ""):
        return None
    if not hmac.compare_digest(cookie.state, state):
        return None
    if not 0 <= now - cookie.issued_at <= STATE_TTL_SECONDS:
        return None
    return cookie


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
        clock: Clock,
    ) -> None:
        self._app_id = settings.wechat.app_id
        self._open_base_url = settings.wechat.open_base_url.rstrip("/") + "/"
        self._public_base_url = settings.server.public_base_url.rstrip("/")
        self._prefix = settings.redis.key_prefix
        self._redis = redis
        self._limits = RateLimits(redis, clock)
        self._api = api
        self._identities = identities
        self._sessions = sessions
        self._clock = clock

    def start(self, next_path: str | None, *, callback_path: str) -> tuple[LoginStart, str]:
        """A new login: what the browser's cookie keeps, and the authorize URL to send it to.
        Nothing is stored here, so anonymous starts cost the server nothing."""
        login = LoginStart(secrets.token_hex(16), safe_next(next_path), int(self._clock.time()))
        return login, self.authorize_url(login.state, callback_path=callback_path)

    def matching(self, cookie: bytes | str | None, state: str) -> LoginStart | None:
        """The login this browser started with this state, if any (see :func:`matching_start`)."""
        return matching_start(LoginStart.from_cookie(cookie), state, self._clock.time())

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

    async def finish(
        self, code: str, login: LoginStart, *, client_ip: str, previous_session_id: str | None = None
    ) -> OAuthLogin:
        """Spend the state (once), exchange the code, upsert the identity and open a session.
        ``login`` is what :meth:`matching` found for this browser. A session the browser already
        had is closed: a login always gets a new session id."""
        if not code or len(code) > 128:
            raise NotLoggedIn()
        windows = [
            Window(k, seconds, limit)
            for k, (seconds, limit) in zip(callback_window_keys(self._prefix, client_ip), CALLBACK_WINDOWS, strict=True)
        ]
        await self._limits.take(windows, "oauth callback")
        try:
            fresh = await self._redis.set(spent_key(self._prefix, login.state), b"1", nx=True, ex=STATE_TTL_SECONDS)
        except RedisError:
            raise Unavailable() from None
        if not fresh:
            log.info("oauth callback with a state already used")
            raise NotLoggedIn()
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
        return OAuthLogin(identity=identity, session_id=session_id, next_path=login.next_path)

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
