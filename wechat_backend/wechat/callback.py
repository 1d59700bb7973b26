"""微信服务器回调 ``/wechat``: verify, decrypt, dedupe, dispatch, reply within WeChat's 5 s.

- 接入指南 (GET echo check, ``signature``):
  https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
- 消息加解密 (plaintext, compatible and safe modes, ``msg_signature``):
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
- 被动回复 (5 s, three tries, ``success``):
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html

wechatpy does the signatures, the AES envelope, parsing and reply rendering; everything it parses
has first passed :mod:`.xml_guard`. A request is refused with 403 when ``signature`` (and in safe
mode ``msg_signature``) is wrong or its timestamp is more than 5 minutes from our clock.

WeChat retries an unanswered push after 5 s, three times in all. The first delivery claims a key in
Redis (``SET NX``) and stores its reply there; a retry gets the same reply and is never processed
again. Handling gets :data:`REPLY_BUDGET` seconds; what takes longer answers ``success`` at once and
goes on in the background, replying by customer-service message. Without Redis the callback still
answers, only without dedupe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from ..clock import Clock
from ..config import ConfigError, Settings
from ..db.models import Identity, Institution
from ..errors import BadInput, Forbidden
from ..identities import IdentityService
from ..redis_client import key
from . import replies
from .replies import Contact
from .xml_guard import check_size, parse_flat

log = logging.getLogger("wechat_backend.wechat.callback")

SendCustom = Callable[[str, str], Awaitable[None]]
"""Sends a customer-service text: ``(openid, text)``; the platform client provides it."""

TIMESTAMP_WINDOW = 300  # seconds either side of our clock
REPLY_BUDGET = 4.0  # seconds from arrival to reply, inside WeChat's 5
REDIS_TIMEOUT = 0.5  # one Redis call may not eat the budget
DEDUP_TTL = 300  # WeChat's three tries span about 15 s
POLL_INTERVAL = 0.05
SUCCESS = "success"
XML_TYPE = "application/xml; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

_PENDING, _DONE = "P", "R"
_FAILED = object()
_SCENE_CODE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_LOG_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")
_OTHER_MESSAGES = ("image", "voice", "video", "shortvideo", "location", "link")
_DECRYPT_ERRORS = (ValueError, TypeError, IndexError, struct.error)


@dataclass(frozen=True)
class CallbackReply:
    """What to answer WeChat: a body and its content type."""

    body: str
    content_type: str


def dedup_key(settings: Settings, dedup_id: str) -> str:
    """``{prefix}:wechat:dedup:<id>``: one key per delivered message or event."""
    return key(settings, "wechat", "dedup", dedup_id)


def dedup_id(fields: Mapping[str, str]) -> str:
    """Messages by MsgId (and sender); events by FromUserName + CreateTime + Event (+ EventKey, so
    two menu clicks in one second stay two). Hashed: no openid in a Redis key."""
    sender = fields.get("FromUserName", "")
    if msg_id := fields.get("MsgId"):
        raw = f"m|{msg_id}|{sender}"
    else:
        raw = f"e|{sender}|{fields.get('CreateTime', '')}|{fields.get('Event', '')}|{fields.get('EventKey', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


async def find_institution(s: AsyncSession, code: str) -> Contact | None:
    """The institution's name and consultation phone, or None when the code is unknown."""
    row = (await s.execute(select(Institution.name, Institution.consult_phone).where(Institution.code == code))).first()
    return Contact(row.name, row.consult_phone) if row else None


async def find_contact(s: AsyncSession, openid: str) -> Contact:
    """The institution a follower came through (first QR scene), in one query; empty if none."""
    row = (
        await s.execute(
            select(Institution.name, Institution.consult_phone)
            .join(Identity, Identity.scene_institution_code == Institution.code)
            .where(Identity.channel == "oa", Identity.openid == openid)
        )
    ).first()
    return Contact(row.name, row.consult_phone) if row else Contact()


class CallbackService:
    """The WeChat server's side of the official account.

    ``echo(query)`` answers the GET URL check; ``handle(query, body)`` answers a POST push with a
    :class:`CallbackReply`; ``drain()`` waits for work that outlived the reply budget.
    ``counts`` tallies ``processed``, ``retried``, ``background`` and ``no_dedupe``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis | None,
        identities: IdentityService,
        clock: Clock,
        send_custom: SendCustom | None = None,
        budget: float = REPLY_BUDGET,
    ) -> None:
        self._settings = settings
        self._wechat = settings.wechat
        self._max_body = settings.limits.max_body_bytes
        self._home_url = f"{settings.server.public_base_url.rstrip('/')}/r/home"
        self._sessions = sessions
        self._redis = redis
        self._identities = identities
        self._clock = clock
        self._send_custom = send_custom
        self._budget = budget
        self._crypto = _crypto(settings)
        self._background: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        # Dispatch table keyed by (MsgType, Event), as wechatpy's MESSAGE_TYPES / EVENT_TYPES.
        self._table: dict[tuple[str, str], Callable[[Any], Awaitable[str | None]]] = {
            ("text", ""): self._on_text,
            ("event", "subscribe"): self._on_subscribe,
            ("event", "subscribe_scan"): self._on_subscribe,
            ("event", "scan"): self._on_scan,
            ("event", "unsubscribe"): self._on_unsubscribe,
            ("event", "click"): self._on_click,
            **{(t, ""): self._on_other_message for t in _OTHER_MESSAGES},
        }

    # ------------------------------------------------------------------ entry points

    def echo(self, query: Mapping[str, str]) -> str:
        """GET URL check: ``echostr`` comes back unchanged once ``signature`` holds (all modes)."""
        self._check_signature(query)
        echostr = query.get("echostr", "")
        if not echostr:
            raise BadInput("echostr")
        return echostr

    async def handle(self, query: Mapping[str, str], body: bytes) -> CallbackReply:
        """A pushed message or event: checked, decrypted, answered once, within the budget."""
        deadline = asyncio.get_running_loop().time() + self._budget
        check_size(body, self._max_body)
        self._check_signature(query)
        safe = query.get("encrypt_type", "").lower() == "aes"  # safe and compatible modes
        text, fields = parse_flat(body, self._max_body)
        if safe:
            text, fields = self._decrypt(query, fields)
        message = _parse(text, fields)
        inner = await self._reply_once(message, fields, deadline)
        if not inner:
            return CallbackReply(SUCCESS, TEXT_TYPE)
        return CallbackReply(self._seal(inner) if safe else inner, XML_TYPE)

    async def drain(self) -> None:
        """Wait for background continuations (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ------------------------------------------------------------------ checks

    def _check_signature(self, query: Mapping[str, str]) -> None:
        signature, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
        well_formed = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
        if not (signature and nonce and well_formed and self._wechat.token):
            raise Forbidden()
        try:
            check_signature(self._wechat.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            raise Forbidden() from None
        if abs(self._clock.time() - int(timestamp)) > TIMESTAMP_WINDOW:
            raise Forbidden()

    def _decrypt(self, query: Mapping[str, str], fields: dict[str, str]) -> tuple[str, dict[str, str]]:
        encrypt = fields.get("Encrypt")
        if not encrypt:
            raise BadInput("Encrypt")
        msg_signature = query.get("msg_signature", "")
        if self._crypto is None or not msg_signature:
            raise Forbidden()
        try:
            # A dict, so wechatpy never parses the outer body itself; it checks msg_signature and appid.
            inner = self._crypto.decrypt_message(
                {"Encrypt": encrypt}, msg_signature, query["timestamp"], query["nonce"]
            )
        except (InvalidSignatureException, InvalidAppIdException):
            raise Forbidden() from None
        except _DECRYPT_ERRORS:
            raise BadInput("Encrypt") from None
        return parse_flat(inner.encode("utf-8"), self._max_body)

    def _seal(self, inner: str) -> str:
        """The safe-mode envelope, with our own nonce (nothing from the request is echoed)."""
        assert self._crypto is not None  # a safe-mode request got this far, so there is a key
        nonce = str(secrets.randbelow(10**10))
        return self._crypto.encrypt_message(inner, nonce, str(int(self._clock.time())))

    # ------------------------------------------------------------------ once, within the budget

    async def _reply_once(self, message: BaseMessage, fields: Mapping[str, str], deadline: float) -> str:
        """The inner reply XML ('' for ``success``), computed once per message."""
        did = dedup_id(fields)
        label = f"{_word(fields['MsgType'])}/{_word(fields.get('Event', '-'))} ref={did[:8]}"
        claimed = await self._claim(did, label)
        if claimed is False:
            self.counts["retried"] += 1
            return await self._stored_reply(did, label, deadline)
        self.counts["processed"] += 1
        task = asyncio.ensure_future(self._dispatch(message))
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        # asyncio.wait, not wait_for(shield(...)): no extra tasks per message, and the work is
        # not cancelled when the budget runs out — it goes on in the background.
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            self._continue_in_background(task, message.source, label)
            text = None
        elif task.exception() is not None:
            if claimed:
                await self._redis_call(label, "delete", dedup_key(self._settings, did))
            raise task.exception()  # type: ignore[misc]
        else:
            text = task.result()
        inner = self._render(message, text) if text else ""
        if claimed:
            await self._redis_call(label, "set", dedup_key(self._settings, did), _DONE + inner, ex=DEDUP_TTL)
        return inner

    async def _claim(self, did: str, label: str) -> bool | None:
        """True: ours to process; False: a retry; None: no dedupe (no Redis, or it failed)."""
        if self._redis is None:
            self.counts["no_dedupe"] += 1
            return None
        ok = await self._redis_call(label, "set", dedup_key(self._settings, did), _PENDING, nx=True, ex=DEDUP_TTL)
        if ok is _FAILED:
            self.counts["no_dedupe"] += 1
            return None
        return bool(ok)  # SET NX answers None when the key exists

    async def _stored_reply(self, did: str, label: str, deadline: float) -> str:
        """The first delivery's reply; while it is still being worked out, wait within the budget."""
        loop = asyncio.get_running_loop()
        while True:
            value = await self._redis_call(label, "get", dedup_key(self._settings, did))
            value = value.decode("utf-8") if isinstance(value, bytes) else value
            value = value if isinstance(value, str) else None  # also _FAILED
            if value and value.startswith(_DONE):
                return value[len(_DONE) :]
            if not value or loop.time() + POLL_INTERVAL > deadline:
                return ""
            await asyncio.sleep(POLL_INTERVAL)

    async def _redis_call(self, label: str, command: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command, bounded in time; failures are logged (no personal data) and give _FAILED."""
        assert self._redis is not None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):  # no task per call, unlike wait_for
                return await getattr(self._redis, command)(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("wechat dedupe unavailable (%s) for %s: answering without it", type(exc).__name__, label)
            return _FAILED

    def _continue_in_background(self, task: asyncio.Future[str | None], openid: str, label: str) -> None:
        self.counts["background"] += 1
        later = asyncio.create_task(self._finish_later(task, openid, label))
        self._background.add(later)
        later.add_done_callback(self._background.discard)

    async def _finish_later(self, task: asyncio.Future[str | None], openid: str, label: str) -> None:
        try:
            text = await task
        except Exception as exc:
            log.error("wechat %s failed after the reply budget: %s", label, type(exc).__name__)
            return
        if not text:
            return
        if self._send_custom is None:
            log.warning("wechat %s: answer ready after the budget, but no customer-service sender", label)
            return
        try:
            await self._send_custom(openid, text)
        except Exception as exc:
            log.warning("wechat %s: customer-service reply failed: %s", label, type(exc).__name__)

    def _render(self, message: BaseMessage, text: str) -> str:
        return TextReply(message=message, content=text, time=int(self._clock.time())).render()

    # ------------------------------------------------------------------ what the account does

    async def _dispatch(self, message: BaseMessage) -> str | None:
        on = self._table.get((message.type, getattr(message, "event", "") or ""))
        return await on(message) if on else None

    async def _on_subscribe(self, message: Any) -> str:
        # subscribe_scan: followed through a parametric QR code, EventKey qrscene_<institution code>.
        return await self._follow(message.source, message.scene_id if message.event == "subscribe_scan" else None)

    async def _on_scan(self, message: Any) -> str:
        # SCAN: a follower scans an institution's code; the first scene is what statistics keep.
        return await self._follow(message.source, message.scene_id)

    async def _follow(self, openid: str, scene: str | None) -> str:
        found = None
        if scene and _SCENE_CODE.fullmatch(scene):
            async with self._sessions() as s:
                found = await find_institution(s, scene)
        code = scene if found else None
        await self._identities.upsert("oa", openid, subscribed=True, scene_institution_code=code)
        return replies.welcome(self._home_url, found.institution if found else None)

    async def _on_unsubscribe(self, message: Any) -> None:
        await self._identities.upsert("oa", message.source, subscribed=False)

    async def _on_click(self, message: Any) -> str:
        return await self._answer(message.key or "", message.source)

    async def _on_text(self, message: Any) -> str:
        return await self._answer(replies.keyword_key(message.content or "") or "", message.source)

    async def _on_other_message(self, message: Any) -> str:
        return replies.fallback(await self._contact(message.source))

    async def _answer(self, menu_key: str, openid: str) -> str:
        if menu_key in replies.MENU_KEYS and menu_key not in replies.NEEDS_CONTACT:
            return replies.answer(menu_key, self._home_url, Contact())
        return replies.answer(menu_key, self._home_url, await self._contact(openid))

    async def _contact(self, openid: str) -> Contact:
        """The consultation phone of the institution the resident followed through, when known."""
        async with self._sessions() as s:
            return await find_contact(s, openid)


def _word(value: str) -> str:
    """A MsgType or Event as it may appear in a log line."""
    return _LOG_UNSAFE.sub("?", value)[:32]


def _crypto(settings: Settings) -> WeChatCrypto | None:
    w = settings.wechat
    if not w.encoding_aes_key:
        return None  # plaintext mode only; safe-mode pushes are refused
    try:
        return WeChatCrypto(w.token, w.encoding_aes_key, w.app_id)
    except (ValueError, AssertionError):
        raise ConfigError("[wechat] encoding_aes_key 应为公众平台给出的 43 位字符") from None


def _parse(text: str, fields: Mapping[str, str]) -> BaseMessage:
    """wechatpy's message object, for XML that has passed the guard and has what we rely on."""
    for name in ("MsgType", "FromUserName"):
        if not fields.get(name):
            raise BadInput(name)
    created = fields.get("CreateTime", "")
    if not (created.isascii() and created.isdigit()):
        raise BadInput("CreateTime")
    try:
        return parse_message(text)
    except (KeyError, AttributeError, TypeError, ValueError):
        raise BadInput("xml") from None
