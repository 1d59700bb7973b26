"""Getting a staff answer to the asker — to the identity that asked, never anyone else.

1. A customer-service text with the answer (客服消息). The platform takes it only within 48 hours
   of the resident's last message, click, follow or scan (45015; 45047: too many such messages);
   a question typed on a page does not open that window.
2. When the platform refuses it (or cannot be reached), a template message of kind
   ``feedback_answered`` through the outbox (``[templates.feedback_answered]``): only the kind, the
   date and who answered, and a link to the answer page. It is tried at once after its commit
   (outside quiet hours); what does not go out then, the worker retries.
3. Neither possible (not following, no template configured, the push given up at once): ``failed``
   — the staff page says the resident can read the answer under 我的留言.

The outcome is kept in ``feedback.delivery`` (custom, template, failed). Nothing here runs inside
an open transaction while WeChat is called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import LOCAL_ZONE, Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Feedback, Notification
from ..notify.kinds import FEEDBACK_ANSWERED
from ..notify.outbox import LEASE, Outbox, Push
from ..notify.quiet import quiet_end_after
from ..wechat.api import WeChatApi, WeChatApiError, WeChatError
from .replies import custom_answer

log = logging.getLogger("wechat_backend.feedback")

CUSTOM, TEMPLATE, FAILED = "custom", "template", "failed"
UNFOLLOWED = 43004  # the platform: this user does not follow the account

FEEDBACK = Feedback.__table__
_SET_DELIVERY = update(FEEDBACK).where(FEEDBACK.c.id == bindparam("row")).values(delivery=bindparam("how"))


@dataclass(frozen=True)
class Answered:
    """An answer just stored, and the identity that asked."""

    feedback_id: int
    public_id: str
    identity_id: int
    openid: str
    channel: str  # oa: the official account can push to it; mp: it cannot
    subscribed: bool
    who: str  # who answered, as the resident reads it (the institution, or the city's team)
    answer: str


def answer_page(public_base_url: str, public_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/r/feedback/{public_id}"


class AnswerDelivery:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        clock: Clock,
        wechat: WeChatApi,
        outbox: Outbox | None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        self._wechat = wechat
        self._outbox = outbox

    async def deliver(self, a: Answered) -> str:
        """Push the answer (see the module docstring); returns how it went, as recorded."""
        if a.channel != "oa" or not a.subscribed:
            return await self._record(a, FAILED)
        page = answer_page(self._settings.server.public_base_url, a.public_id)
        try:
            await self._wechat.send_custom_text(a.openid, custom_answer(a.who, a.answer, page))
            return await self._record(a, CUSTOM)
        except WeChatApiError as exc:
            if exc.errcode == UNFOLLOWED:
                return await self._record(a, FAILED)
            log.info("feedback %s: customer-service text refused (errcode %s)", a.public_id, exc.errcode)
        except WeChatError as exc:
            log.warning("feedback %s: customer-service text not sent (%s)", a.public_id, type(exc).__name__)
        return await self._by_template(a)

    async def _by_template(self, a: Answered) -> str:
        if not self._settings.templates.spec(FEEDBACK_ANSWERED).template_id or self._outbox is None:
            return await self._record(a, FAILED)
        now = self._clock.now()
        quiet = quiet_end_after(now, self._settings.notify) is not None
        dedup = f"{FEEDBACK_ANSWERED}:{a.public_id}"
        # What the push says: no answer text, no name — the kind, the date, who answered, the link.
        payload = {"feedback": a.public_id, "date": now.astimezone(LOCAL_ZONE).date().isoformat(), "institution": a.who}
        async with self._sessions.begin() as s:
            note = Notification(
                identity_id=a.identity_id,  # the asker's identity, and only it
                archive_id=None,  # the answer is the asker's whatever became of an archive since
                kind=FEEDBACK_ANSWERED,
                dedup_key=dedup,
                status="pending",
                priority=1,
                attempts=0,
                # Outside quiet hours it is sent right after the commit; the worker's turn comes
                # after the lease. In quiet hours the worker sends it when they end.
                due_at=now if quiet else now + LEASE,
                sealed=self._keys.seal(payload, f"notification:{dedup}"),
                key_id=self._keys.active_key,
                created_at=now,
                updated_at=now,
            )
            s.add(note)
            await s.flush()
            await s.execute(_SET_DELIVERY, {"row": a.feedback_id, "how": TEMPLATE})
        if quiet:
            return TEMPLATE
        push = Push(
            id=note.id,
            kind=FEEDBACK_ANSWERED,
            attempts=0,
            openid=a.openid,
            payload=payload,
            dedup_key=dedup,
            identity_id=a.identity_id,
            lease_until=note.due_at,
        )
        try:
            status = await self._outbox.deliver(push)
        except Exception as exc:  # the row stays pending: the worker sends it
            log.warning("feedback %s: template push not recorded now (%s)", a.public_id, type(exc).__name__)
            return TEMPLATE
        return await self._record(a, FAILED) if status in ("skipped", "dead") else TEMPLATE

    async def _record(self, a: Answered, how: str) -> str:
        async with self._sessions.begin() as s:
            await s.execute(_SET_DELIVERY, {"row": a.feedback_id, "how": how})
        log.info("feedback %s: answer delivery %s", a.public_id, how)
        return how
