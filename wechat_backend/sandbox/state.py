"""The sandbox's memory: simulated users, what was pushed to them, their chats, menus, tags, codes,
tokens, SMS, faults.

It lives in this process. What a demo needs again after a restart — users, chats and pushes, SMS,
menus and tags — is also written to ``<data_dir>/sandbox-state.json`` (``store.py``, which does
that I/O; ``from_settings`` loads it); codes, tokens and faults are not kept. No I/O here: the
platform API (``platform.py``) applies WeChat's rules to this state, the control API and the phone
page (``handlers.py``) read and change it, and call :meth:`SandboxState.changed` after a change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from wechat_backend.clock import Clock

if TYPE_CHECKING:
    from wechat_backend.config import Settings

    from .store import StateStore

TOKEN_TTL = 7200  # cgi-bin/token, stable_token, sns/oauth2/access_token
TOKEN_OVERLAP = 300  # after a new cgi-bin/token the previous one still works this long
CODE_TTL = 300  # OAuth and wx.login codes: 5 minutes, single use
SYSTEM_TAGS = {2: "星标组"}
FIRST_TAG_ID = 100
MAX_CHAT = 500  # chat entries kept per user (the oldest go first)


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_wechat_id() -> str:
    """An id in the shape of an openid/unionid: 'o' and 27 URL-safe characters."""
    return "o" + secrets.token_urlsafe(21)[:27]


@dataclass(frozen=True)
class Account:
    """An app the platform knows: the official account or the mini-program."""

    app_id: str
    app_secret: str


@dataclass
class SimUser:
    """A simulated WeChat user: one person, with an openid per app (official account, mini-program)."""

    openid: str
    nickname: str
    mp_openid: str
    unionid: str | None = None
    subscribed: bool = False
    subscribe_time: int = 0
    subscribe_scene: str = ""
    qr_scene: str = ""
    tag_ids: list[int] = field(default_factory=list)
    last_interaction: float | None = None


@dataclass(frozen=True)
class PushedMessage:
    """A template or customer-service message the backend sent to one user."""

    msgid: int
    kind: Literal["template", "custom"]
    at: float
    template_id: str | None = None
    data: dict[str, Any] | None = None
    url: str | None = None
    miniprogram: dict[str, Any] | None = None
    msgtype: str | None = None
    text: str | None = None
    client_msg_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "msgid": self.msgid,
            "template_id": self.template_id,
            "data": self.data,
            "url": self.url,
            "miniprogram": self.miniprogram,
            "msgtype": self.msgtype,
            "text": self.text,
            "at": iso(self.at),
        }


ChatKind = Literal["sent", "note", "reply", "push"]


@dataclass(frozen=True)
class ChatEntry:
    """One line of a user's chat with the account, in order: what they sent (``sent``), what they
    did (``note``: followed, scanned, tapped a menu item), the account's passive ``reply`` (its
    ``msgtype`` and content) and what it pushed later (``push``: the :class:`PushedMessage` by msgid)."""

    seq: int
    at: float
    kind: ChatKind
    text: str | None = None
    reply: Any = None
    msgtype: str | None = None
    msgid: int | None = None

    def to_json(self, pushed: dict[int, PushedMessage]) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "at": iso(self.at), "kind": self.kind}
        if self.kind in ("sent", "note"):
            out["text"] = self.text
        elif self.kind == "reply":
            out["reply"] = self.reply
            if self.msgtype not in (None, "text"):
                out["msgtype"] = self.msgtype
        else:
            msg = pushed.get(self.msgid or 0)
            out["message"] = msg.to_json() if msg else None
        return out


@dataclass
class AccessToken:
    value: str
    app_id: str
    expires_at: float
    stable: bool
    revoked_at: float | None = None  # superseded by a newer token: invalid (40001) from then on

    def usable(self, now: float) -> bool:
        return now < self.expires_at and (self.revoked_at is None or now < self.revoked_at)


@dataclass(frozen=True)
class WebToken:
    """An OAuth web-authorization token (sns/oauth2/access_token): not the base access_token."""

    value: str
    openid: str
    scope: str
    expires_at: float


@dataclass
class LoginCode:
    code: str
    kind: Literal["oauth", "mp"]
    app_id: str
    openid: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class Fault:
    """The next ``remaining`` calls to ``api`` wait ``latency_ms`` and/or fail with ``errcode``."""

    api: str
    errcode: int
    remaining: int  # 0: until deleted
    latency_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"api": self.api, "errcode": self.errcode, "count": self.remaining, "latency_ms": self.latency_ms}


@dataclass(frozen=True)
class Menu:
    menuid: int
    button: list[dict[str, Any]]
    matchrule: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"button": self.button, "menuid": self.menuid}
        if self.matchrule is not None:
            out["matchrule"] = self.matchrule
        return out


@dataclass(frozen=True)
class Sms:
    phone: str
    text: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"phone": self.phone, "text": self.text, "at": iso(self.at)}


class SandboxState:
    """All the platform knows, in memory. One instance per sandbox."""

    def __init__(self, official: Account, miniprogram: Account, *, clock: Clock | None = None) -> None:
        self.official = official
        self.miniprogram = miniprogram
        self.clock = clock or Clock()
        # The official account's original id (gh_…), the ToUserName of every message it receives.
        self.original_id = "gh_" + hashlib.sha1(official.app_id.encode()).hexdigest()[:12]
        self.oauth_domains: set[str] = set()  # 网页授权域名: redirect_uri hosts allowed (empty: any)
        self.users: dict[str, SimUser] = {}
        self.messages: dict[str, list[PushedMessage]] = defaultdict(list)
        self.menu: Menu | None = None
        self.conditional_menus: list[Menu] = []
        self.tags: dict[int, str] = dict(SYSTEM_TAGS)
        self.codes: dict[str, LoginCode] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.web_tokens: dict[str, WebToken] = {}  # sns/oauth2 access tokens
        self.qr_tickets: dict[str, str] = {}  # scene -> ticket from cgi-bin/qrcode/create
        self.sms: list[Sms] = []
        self.faults: dict[str, Fault] = {}
        # Every platform call received, by path (not kept with the state): what tests count, since
        # what the sandbox shows drops a repeated client_msg_id.
        self.calls: Counter[str] = Counter()
        self.chat: dict[str, list[ChatEntry]] = defaultdict(list)
        # The last id handed out of each kind (kept with the state: a msgid is never used twice).
        self.last_msgid = secrets.randbelow(10**9) + 10**9
        self.last_menuid = secrets.randbelow(10**8) + 4 * 10**8
        self.last_tagid = FIRST_TAG_ID - 1
        self.last_chat_seq = 0
        self.store: StateStore | None = None  # where the state is kept, if it is

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None, keep: bool = True) -> SandboxState:
        """The sandbox of these settings; with ``keep``, what ``<data_dir>/sandbox-state.json``
        holds is loaded and every change is written back (``store.py``)."""
        w, mp = settings.wechat, settings.miniprogram
        state = cls(Account(w.app_id, w.app_secret), Account(mp.app_id, mp.app_secret), clock=clock)
        host = urllib.parse.urlsplit(settings.server.public_base_url).hostname
        if host:
            state.oauth_domains.add(host)
        if keep:
            from .store import StateStore  # the file's I/O lives there

            StateStore.for_settings(settings).attach(state)
        return state

    def changed(self) -> None:
        """Something worth keeping changed (the handlers call this after each changing request)."""
        if self.store is not None:
            self.store.schedule()

    def now(self) -> float:
        return self.clock.time()

    def account(self, app_id: str) -> Account | None:
        return next((a for a in (self.official, self.miniprogram) if a.app_id and a.app_id == app_id), None)

    def next_msgid(self) -> int:
        self.last_msgid += 1
        return self.last_msgid

    # ------------------------------------------------------------------ users

    def create_user(self, nickname: str, *, unionid: str | None = None) -> SimUser:
        user = SimUser(openid=new_wechat_id(), nickname=nickname, mp_openid=new_wechat_id(), unionid=unionid)
        self.users[user.openid] = user
        return user

    def subscribe(self, user: SimUser, *, scene: str = "") -> None:
        user.subscribed = True
        user.subscribe_time = int(self.now())
        user.subscribe_scene = "ADD_SCENE_QR_CODE" if scene else "ADD_SCENE_SEARCH"
        user.qr_scene = scene
        self.touch(user)

    def unsubscribe(self, user: SimUser) -> None:
        user.subscribed = False

    def touch(self, user: SimUser) -> None:
        """The user messaged, clicked, followed or scanned: opens the 48-hour customer-service window."""
        user.last_interaction = self.now()

    def user_json(self, user: SimUser) -> dict[str, Any]:
        return {
            "openid": user.openid,
            "nickname": user.nickname,
            "subscribed": user.subscribed,
            "tags": [self.tags[t] for t in user.tag_ids if t in self.tags],
            "tagid_list": list(user.tag_ids),
            "mp_openid": user.mp_openid,
            "unionid": user.unionid,
        }

    # ------------------------------------------------------------------ tokens and codes

    def issue_token(self, app_id: str, *, stable: bool = False) -> AccessToken:
        now = self.now()
        token = AccessToken(secrets.token_urlsafe(96), app_id, now + TOKEN_TTL, stable)
        for t in [t for t in self.tokens.values() if not t.usable(now)]:
            del self.tokens[t.value]
        self.tokens[token.value] = token
        return token

    def current_stable_token(self, app_id: str) -> AccessToken | None:
        now = self.now()
        live = [t for t in self.tokens.values() if t.stable and t.app_id == app_id and t.revoked_at is None]
        live = [t for t in live if t.expires_at > now]
        return max(live, key=lambda t: t.expires_at, default=None)

    def revoke_tokens(self, app_id: str, *, stable: bool, grace: float) -> None:
        """A newer token for this app supersedes the older ones of the same kind after ``grace`` seconds."""
        at = self.now() + grace
        for t in self.tokens.values():
            if t.app_id == app_id and t.stable == stable and t.revoked_at is None:
                t.revoked_at = at

    def issue_code(self, kind: Literal["oauth", "mp"], user: SimUser, *, scope: str = "snsapi_base") -> LoginCode:
        app = self.official if kind == "oauth" else self.miniprogram
        code = LoginCode(secrets.token_urlsafe(24), kind, app.app_id, user.openid, scope, self.now() + CODE_TTL)
        now = self.now()
        for stale in [c for c in self.codes.values() if c.expires_at <= now]:
            del self.codes[stale.code]
        self.codes[code.code] = code
        return code

    def issue_web_token(self, openid: str, scope: str) -> WebToken:
        now = self.now()
        for stale in [v for v, t in self.web_tokens.items() if t.expires_at <= now]:
            del self.web_tokens[stale]
        token = WebToken(secrets.token_urlsafe(64), openid, scope, now + TOKEN_TTL)
        self.web_tokens[token.value] = token
        return token

    # ------------------------------------------------------------------ pushed messages, SMS

    def record_message(self, openid: str, kind: Literal["template", "custom"], **fields: Any) -> PushedMessage:
        msg = PushedMessage(msgid=self.next_msgid(), kind=kind, at=self.now(), **fields)
        self.messages[openid].append(msg)
        self.record_chat(openid, "push", msgid=msg.msgid)
        return msg

    def messages_for(self, openid: str) -> list[PushedMessage]:
        """Newest first."""
        return list(reversed(self.messages.get(openid, [])))

    # ------------------------------------------------------------------ the chat

    def record_chat(self, openid: str, kind: ChatKind, **fields: Any) -> ChatEntry:
        self.last_chat_seq += 1
        entry = ChatEntry(seq=self.last_chat_seq, at=self.now(), kind=kind, **fields)
        lines = self.chat[openid]
        lines.append(entry)
        if len(lines) > MAX_CHAT:
            del lines[: len(lines) - MAX_CHAT]
        return entry

    def chat_for(self, openid: str, after: int = 0) -> list[dict[str, Any]]:
        """The user's chat in order, the entries after ``seq`` ``after`` only."""
        lines = [e for e in self.chat.get(openid, []) if e.seq > after]
        wanted = {e.msgid for e in lines if e.kind == "push"}
        pushed = {m.msgid: m for m in self.messages.get(openid, []) if m.msgid in wanted} if wanted else {}
        return [e.to_json(pushed) for e in lines]

    def record_sms(self, phone: str, text: str) -> Sms:
        sms = Sms(phone, text, self.now())
        self.sms.append(sms)
        return sms

    def sms_for(self, phone: str | None) -> list[Sms]:
        """Newest first; every phone when ``phone`` is empty."""
        return [s for s in reversed(self.sms) if not phone or s.phone == phone]

    # ------------------------------------------------------------------ menus

    def new_menuid(self) -> int:
        self.last_menuid += 1
        return self.last_menuid

    def menu_item_name(self, user: SimUser, key: str) -> str | None:
        """The name of the CLICK item with ``key`` in the menu this user sees."""
        menu = self.menu_for(user)
        for button in menu.button if menu else []:
            for leaf in button.get("sub_button") or [button]:
                if leaf.get("key") == key:
                    return str(leaf.get("name") or "") or None
        return None

    def menu_for(self, user: SimUser) -> Menu | None:
        """The menu this user sees: the newest conditional menu whose tag matches, else the default.

        Only ``tag_id`` is simulated; other match fields (platform, language, …) match everyone.
        """
        if self.menu is None:
            return None
        for menu in reversed(self.conditional_menus):
            tag = str((menu.matchrule or {}).get("tag_id") or "")
            if not tag or (tag.isdigit() and int(tag) in user.tag_ids):
                return menu
        return self.menu

    # ------------------------------------------------------------------ tags

    def create_tag(self, name: str) -> int:
        self.last_tagid += 1
        self.tags[self.last_tagid] = name
        return self.last_tagid

    def tag_members(self, tag_id: int) -> list[SimUser]:
        return [u for u in self.users.values() if tag_id in u.tag_ids]

    # ------------------------------------------------------------------ faults

    def set_fault(self, api: str, *, errcode: int, count: int, latency_ms: int) -> Fault:
        fault = Fault(api.strip("/"), errcode, count, latency_ms)
        self.faults[fault.api] = fault
        return fault

    def take_fault(self, api: str) -> Fault | None:
        """The fault for this call, if any; counts it down and forgets it after its last call."""
        fault = self.faults.get(api)
        if fault is None:
            return None
        if fault.remaining:
            fault.remaining -= 1
            if fault.remaining == 0:
                del self.faults[api]
        return fault
