"""微信服务器回调 ``/wechat``: verify, decrypt, dedupe, dispatch, reply within WeChat's 5 s.

- 接入指南 (GET echo check, ``signature``):
  https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
- 消息加解密 (plaintext, compatible and safe modes, ``msg_signature``):
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
- 被动回复 (5 s, three tries, ``success``):
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html

wechatpy does the signatures, the AES envelope, the message objects and reply rendering; every
byte parsed has first passed :mod:`.xml_guard`, which parses each body once (the wechatpy message is
built from those fields). A request is refused with 403 when ``signature`` (and in safe mode
``msg_signature``) is wrong or its timestamp is more than 5 minutes from our clock.

``signature`` covers only the token, timestamp and nonce, never the body: anyone holding one logged
URL could post any body under it for five minutes. So with ``[wechat] encoding_aes_key`` configured
a POST must come encrypted (``encrypt_type=aes``, compatible or safe mode, checked by
``msg_signature``); a plaintext POST is refused with 403 before its body is parsed, and a marker in
Redis (:func:`plaintext_refused_key`) lets ``wechat-backend check`` say that the platform still
sends plaintext. In compatible mode only the decrypted content is used. Without a key, plaintext
mode works as the platform sends it. The GET URL check is plaintext-signed in every mode.

WeChat retries an unanswered push after 5 s, three times in all. Each delivered message has a
dedupe key in Redis holding its reply; a retry gets the stored reply and is never processed again.

- Text, menu clicks and other messages get a text answer that needs no I/O but the sender's contact
  line (the consultation phone of the institution they followed through), cached in Redis per
  follower. The reply is rendered first, and one Lua script claims the key, splices in the cached
  line and stores the reply: one round trip. Without a cached line the script only claims; the line
  is read from the database (and cached), then the reply is stored.
- Follow, scan and unfollow write to the database: the key is claimed (``SET NX``), the work runs,
  the reply is stored. Follow and scan also write the follower's contact line to the cache; an
  unfollow also skips every push still waiting for that follower.
- 随访提醒 (the FOLLOWUP menu item and its keywords) answers with the person's own next due dates:
  read from the database each time, like a follow, and never cached beyond the retry's dedupe key.

Work that takes longer than :data:`REPLY_BUDGET` seconds answers ``success`` at once and goes on in
the background, replying by customer-service message. Without Redis the callback still answers,
only without dedupe and with the contact read from the database. Redis may lose everything at any
moment: the database is the truth, the cache only spares it.

The parts: :mod:`.envelope` (signature, AES envelope), :mod:`.inbound` (fields to a wechatpy message),
:mod:`.dedupe` (the retries' keys in Redis), :mod:`.contact` (whom a follower can call).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply

from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..errors import BadInput, Forbidden
from ..feedback.text import question_in_message
from ..identities import IdentityService
from ..notify.kinds import DUE_KINDS
from ..notify.outbox import skip_pending_of
from ..notify.upcoming import upcoming_for
from ..redis_client import key
from ..staff.qr_confirm import announce_scan
from ..staff.qr_login import is_login_scene
from . import replies
from .contact import CONTACT_TTL, contact_key, find_contact, find_institution
from .dedupe import LINE, DedupeStore, best_effort
from .envelope import check_signed, open_sealed, plaintext_half, seal
from .inbound import Label, dedup_id, to_message
from .message_crypto import message_crypto
from .replies import Contact
from .xml_guard import check_size, parse_flat

if TYPE_CHECKING:
    from ..feedback import FeedbackService

log = logging.getLogger("wechat_backend.wechat.callback")

SendCustom = Callable[[str, str], Awaitable[None]]
"""Sends a customer-service text: ``(openid, text)``; the platform client provides it."""

REPLY_BUDGET = 4.0  # seconds from arrival to reply, inside WeChat's 5
PLAINTEXT_REFUSED_TTL = 7 * 24 * 3600  # how long `check` keeps warning after the last refusal
SUCCESS = "success"
XML_TYPE = "application/xml; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

_SCENE_CODE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_OTHER_MESSAGES = ("image", "voice", "video", "shortvideo", "location", "link")


@dataclass(frozen=True)
class CallbackReply:
    """What to answer WeChat: a body and its content type."""

    body: str
    content_type: str


def plaintext_refused_key(settings: Settings) -> str:
    """``{prefix}:wechat:plaintext_refused``: when (unix seconds) a signed plaintext push was last
    refused while a key is configured; ``wechat-backend check`` warns while it exists."""
    return key(settings, "wechat", "plaintext_refused")


# Messages answered with a text that needs no I/O but the contact line: (MsgType, Event) -> menu key.
# A question (``留言 …``, feedback/text.py) is not one: None sends it to the dispatch table.
_ANSWERS: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("text", ""): lambda m: (
        None if question_in_message(m.content or "") is not None else replies.keyword_key(m.content or "") or ""
    ),
    ("event", "click"): lambda m: m.key or "",
    **{(t, ""): lambda m: "" for t in _OTHER_MESSAGES},  # the fallback
}


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
        keyring: KeyRing | None = None,
        feedback: FeedbackService | None = None,
    ) -> None:
        self._settings = settings
        self._wechat = settings.wechat
        self._max_body = settings.limits.max_body_bytes
        self._home_url = f"{settings.server.public_base_url.rstrip('/')}/r/home"
        self._settings_url = f"{settings.server.public_base_url.rstrip('/')}/r/settings"
        # Opens the archives' birth dates and names for 随访提醒 (the same keys as the process's ring).
        self._keys = keyring or KeyRing.from_settings(settings.security)
        self._sessions = sessions
        self._redis = redis
        self._dedupe = DedupeStore(settings, redis)
        self._identities = identities
        self._clock = clock
        self._send_custom = send_custom
        self._budget = budget
        self._feedback = feedback  # takes 留言 texts (questions to staff)
        self._crypto = message_crypto(settings)
        # Whom a follower who came through no institution's QR code can call.
        phone = settings.service.consult_phone
        self._city = Contact("卫生健康", phone) if phone else Contact()
        self._background: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        # Dispatch table for what does I/O, keyed by (MsgType, Event) as wechatpy's EVENT_TYPES.
        self._table: dict[tuple[str, str], Callable[[Any], Awaitable[str | None]]] = {
            ("event", "subscribe"): self._on_subscribe,
            ("event", "subscribe_scan"): self._on_subscribe,
            ("event", "scan"): self._on_scan,
            ("event", "unsubscribe"): self._on_unsubscribe,
        }
        self._table[("text", "")] = self._on_question  # only questions get here (see _ANSWERS)

    # ------------------------------------------------------------------ entry points

    def echo(self, query: Mapping[str, str]) -> str:
        """GET URL check: ``echostr`` comes back unchanged once ``signature`` holds (all modes)."""
        check_signed(self._wechat.token, query, self._clock)
        echostr = query.get("echostr", "")
        if not echostr:
            raise BadInput("echostr")
        return echostr

    async def handle(self, query: Mapping[str, str], body: bytes) -> CallbackReply:
        """A pushed message or event: checked, decrypted, answered once, within the budget."""
        deadline = asyncio.get_running_loop().time() + self._budget
        check_size(body, self._max_body)
        check_signed(self._wechat.token, query, self._clock)
        aes = query.get("encrypt_type", "").lower() == "aes"  # safe and compatible modes
        sealed = self._crypto if aes else None  # the envelope to open and the reply to seal
        if self._crypto is not None and not aes:
            await self._refuse_plaintext()
        if sealed is not None and not query.get("msg_signature"):
            raise Forbidden()
        fields = parse_flat(body, self._max_body)
        if sealed is not None:
            fields = open_sealed(sealed, query, fields, self._max_body)  # compatible mode: plaintext dropped
        elif aes:
            fields = plaintext_half(fields)
        inner = await self._reply_once(to_message(fields), fields, deadline)
        if not inner:
            return CallbackReply(SUCCESS, TEXT_TYPE)
        return CallbackReply(inner if sealed is None else seal(sealed, inner, self._clock), XML_TYPE)

    async def drain(self) -> None:
        """Wait for background continuations and Redis calls in flight (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._dedupe.drain()

    # ------------------------------------------------------------------ checks

    async def _refuse_plaintext(self) -> NoReturn:
        """A signed plaintext push while a key is configured: 403, logged and marked for ``check``.
        The body is not looked at; the marker is best effort and never changes the answer."""
        self.counts["plaintext_refused"] += 1
        log.warning(
            "wechat: plaintext push refused because [wechat] encoding_aes_key is set; "
            "switch the platform's message encryption to compatible or safe mode"
        )
        if self._redis is not None:
            mark = plaintext_refused_key(self._settings)
            now = int(self._clock.time())
            await best_effort(
                "a plaintext push", self._redis.set, mark, now, ex=PLAINTEXT_REFUSED_TTL, purpose="plaintext marker"
            )
        raise Forbidden()

    # ------------------------------------------------------------------ once, within the budget

    async def _reply_once(self, message: BaseMessage, fields: Mapping[str, str], deadline: float) -> str:
        """The inner reply XML ('' for ``success``), computed once per message."""
        did = dedup_id(fields)
        label = Label(fields, did)
        answer = _ANSWERS.get((message.type, getattr(message, "event", "") or ""))
        menu_key = answer(message) if answer else None
        personal = menu_key == replies.FOLLOWUP  # the person's own dates: from the database, every time
        if menu_key is not None and not personal and self._redis is not None:
            claimed, stored = await self._answer_once(message, menu_key, did, label)
            if claimed and stored is not None:
                self.counts["processed"] += 1
                return stored
        else:
            claimed, stored = await self._dedupe.claim(did, label), None
        if claimed is None:
            self.counts["no_dedupe"] += 1
        elif claimed is False:
            self.counts["retried"] += 1
            return await self._dedupe.stored_reply(did, label, deadline, stored)
        self.counts["processed"] += 1
        if personal:
            work = self._upcoming(message.source)
        elif menu_key is not None:  # no cached contact line, or no dedupe
            work = self._answer(menu_key, message.source, label, cache=claimed is not None)
        else:
            work = self._dispatch(message)
        return await self._within_budget(work, message, did, label, claimed, deadline)

    async def _answer_once(
        self, message: BaseMessage, menu_key: str, did: str, label: Label
    ) -> tuple[bool | None, str | None]:
        """The answer rendered and stored in one round trip, the cached contact line spliced in
        (see :meth:`.DedupeStore.answer_once`)."""
        ckey: str | None = None
        line: Contact | str = Contact()
        if replies.needs_contact(menu_key):
            ckey, line = contact_key(self._settings, message.source), LINE
        reply = self._render(message, replies.answer(menu_key, self._home_url, line))
        return await self._dedupe.answer_once(did, label, reply, ckey)

    async def _within_budget(
        self,
        work: Coroutine[Any, Any, str | None],
        message: BaseMessage,
        did: str,
        label: Label,
        claimed: bool | None,
        deadline: float,
    ) -> str:
        """Runs ``work`` until the deadline (then in the background), renders and stores its reply."""
        task = asyncio.ensure_future(work)
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        # asyncio.wait, not wait_for(shield(...)): no extra tasks per message, and the work is
        # not cancelled when the budget runs out — it goes on in the background.
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            self._continue_in_background(task, message.source, label)
            text = None
        elif task.exception() is not None:
            if claimed:
                await self._dedupe.forget(did, label)
            raise task.exception()  # type: ignore[misc]
        else:
            text = task.result()
        inner = self._render(message, text) if text else ""
        if claimed:
            await self._dedupe.keep(did, label, inner)
        return inner

    def _continue_in_background(self, task: asyncio.Future[str | None], openid: str, label: Label) -> None:
        self.counts["background"] += 1
        later = asyncio.create_task(self._finish_later(task, openid, label))
        self._background.add(later)
        later.add_done_callback(self._background.discard)

    async def _finish_later(self, task: asyncio.Future[str | None], openid: str, label: Label) -> None:
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
        if is_login_scene(scene):  # the 工作台's desktop login QR code: never an institution's follow
            identity = await self._identities.upsert("oa", openid, subscribed=True)
            # Only announced: the member confirms on the page the reply links to (staff/qr_confirm.py).
            settings = self._settings
            return await announce_scan(self._sessions, self._redis, settings, self._clock, identity.id, scene or "")
        found = None
        if scene and _SCENE_CODE.fullmatch(scene):
            async with self._sessions() as s:
                found = await find_institution(s, scene)
        code = scene if found else None
        identity = await self._identities.upsert("oa", openid, subscribed=True, scene_institution_code=code)
        # The follower's contact line as of now, so their next messages need no database.
        if identity.scene_institution_code is None:
            contact = self._city
        elif found is not None and identity.scene_institution_code == code:
            contact = found
        else:  # credited to an institution scanned before
            contact = await self._contact(openid)
        if self._redis is not None:
            ckey, line = contact_key(self._settings, openid), replies.contact_line(contact)
            await best_effort("a follow", self._redis.set, ckey, line, ex=CONTACT_TTL, purpose="contact cache")
        return replies.welcome(self._home_url, found.institution if found else None)

    async def _on_unsubscribe(self, message: Any) -> None:
        identity = await self._identities.upsert("oa", message.source, subscribed=False)
        async with self._sessions.begin() as s:  # nothing more goes to someone who left
            await skip_pending_of(s, identity.id)

    async def _on_question(self, message: Any) -> str:
        """``留言 …``: the question stored for the inbox it routes to; the reply says who answers
        and where to read it (or why it was not taken)."""
        question = question_in_message(message.content or "") or ""
        if self._feedback is None:  # a callback built without the inbox: say how to reach someone
            return await self._answer(replies.FEEDBACK, message.source, Label({}, ""), cache=False)
        return await self._feedback.take_message(message.source, question)

    async def _upcoming(self, openid: str) -> str:
        """随访提醒: the follower's next due dates, or how to bind when they have bound nothing."""
        async with self._sessions() as s:
            items = await upcoming_for(s, self._keys, self._settings.privacy, openid, self._clock.today())
        if items is None:
            return replies.answer(replies.FOLLOWUP, self._home_url, Contact())
        notify = self._settings.notify
        return replies.upcoming(
            items,
            home_url=self._home_url,
            settings_url=self._settings_url,
            pushed=[k for k in DUE_KINDS if self._settings.templates.spec(k).template_id],
            lead_days=notify.lead_days,
            quiet=(notify.quiet_start, notify.quiet_end),
        )

    async def _answer(self, menu_key: str, openid: str, label: Label, *, cache: bool) -> str:
        """The answer when the contact line is not cached (or Redis is not there): from the database."""
        if not replies.needs_contact(menu_key):
            return replies.answer(menu_key, self._home_url, Contact())
        line = replies.contact_line(await self._contact(openid))
        if cache and self._redis is not None:
            # NX: a follow that wrote the line meanwhile knows better than our earlier read.
            ckey = contact_key(self._settings, openid)
            await best_effort(label, self._redis.set, ckey, line, nx=True, ex=CONTACT_TTL, purpose="contact cache")
        return replies.answer(menu_key, self._home_url, line)

    async def _contact(self, openid: str) -> Contact:
        """The consultation phone of the institution the resident followed through, when known;
        else the city's (``[service] consult_phone``), when set."""
        async with self._sessions() as s:
            found = await find_contact(s, openid)
        return found if found.phone else self._city
