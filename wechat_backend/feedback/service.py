"""FeedbackService: residents ask (留言), staff in scope read and answer.

Residents ask from an archive page or by sending ``留言 …`` to the account. A question goes to
the inbox :mod:`.routing` picks and is stored sealed (text and answer, SM4-GCM, associated data
``feedback:<public_id>``). Each identity may ask :data:`ASK_WINDOWS` (Redis, failing closed), so
no one can flood an inbox. A question is seen by its asker (their identity only; anyone else's id
is the same 404 as none) and by staff whose scope covers it (``staff.scope.covers``; anyone else
gets the same 404). Asking, a staff member's reading and answering are audited, with the
question's public id and never its text. The answer is delivered by :mod:`.delivery`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import open_fields
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Archive, Feedback, Identity, Staff
from ..errors import BadInput, Conflict, NotFound, RateLimited, Unavailable
from ..identities import IdentityService
from ..ids import new_public_id
from ..notify.outbox import Outbox
from ..privacy.masks import mask_name
from ..rate_limits import RateLimits, Window, WindowFull
from ..redis_client import key
from ..staff.accounts import staff_aad
from ..staff.scope import StaffMember, covers
from ..wechat.api import WeChatApi
from . import store
from .delivery import AnswerDelivery, Answered
from .replies import received, refused, who_answers
from .routing import MESSAGE, PAGE, Route, pick_archive, route_question
from .text import clean_answer, clean_question
from .views import (
    Asked,
    AskForm,
    Inbox,
    InboxList,
    InboxQuestion,
    InboxRow,
    MyQuestion,
    QuestionPage,
    asker_tag,
    is_overdue,
    preview,
)

# Questions per identity: at most 3 a minute and 10 a day.
ASK_WINDOWS = ((60, 3), (86400, 10))
MINE_LIMIT = 50  # 我的留言 shows the newest this many
INBOX_PAGE = 30
STATUSES = ("open", "answered", "all")
_OPAQUE = re.compile(r"[0-9A-Za-z_-]{1,24}")

FEEDBACK = Feedback.__table__
_ANSWER = (
    update(FEEDBACK)
    .where(FEEDBACK.c.id == bindparam("row"), FEEDBACK.c.status == "open")
    .values(
        status="answered",
        sealed=bindparam("new_sealed"),
        key_id=bindparam("new_key"),
        replied_at=bindparam("at"),
        replied_by=bindparam("by"),
        updated_at=bindparam("at"),
    )
)
_RECIPIENT = select(Identity.openid, Identity.channel, Identity.subscribed).where(Identity.id == bindparam("identity"))
_ARCHIVE_NAME = select(Archive.upstream_id, Archive.sealed).where(Archive.id == bindparam("archive"))
_STAFF_NAME = select(Staff.public_id, Staff.sealed).where(Staff.id == bindparam("staff"))


@dataclass(frozen=True)
class MessageCaller:
    """Who asked by message: the follower's identity (no request id or address to keep)."""

    identity_id: int
    request_id: str | None = None
    client_ip: str | None = None


def feedback_aad(public_id: str) -> str:
    return f"feedback:{public_id}"


class FeedbackService:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        clock: Clock,
        wechat: WeChatApi,
        *,
        identities: IdentityService,
        outbox: Outbox | None,
        limits: RateLimits,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        self._identities = identities
        self._limits = limits
        self._delivery = AnswerDelivery(settings, sessions, keyring, clock, wechat, outbox)
        self._list_url = f"{settings.server.public_base_url.rstrip('/')}/r/feedback"

    # ------------------------------------------------------------------ residents

    async def ask_form(self, caller: audit.Caller, archive: str | None = None) -> AskForm:
        """Where a question asked now would go (for the form); someone else's archive is not found."""
        async with self._sessions.begin() as s:
            route = await self._routed(s, caller, archive)
            return AskForm(archive, await self._inbox(s, route.institution_code))

    async def ask(self, caller: audit.Caller, text: str, *, archive: str | None = None, channel: str = PAGE) -> Asked:
        """Store a question; ``archive``: the public id of the archive page it is asked from."""
        text = clean_question(text)
        await self._take_ask(caller.identity_id)
        now = self._clock.now()
        async with self._sessions.begin() as s:
            route = await self._routed(s, caller, archive)
            public_id = new_public_id()
            s.add(
                Feedback(
                    public_id=public_id,
                    identity_id=caller.identity_id,
                    archive_id=route.archive_id,
                    county_code=route.county_code,
                    institution_code=route.institution_code,
                    route=route.route,
                    channel=channel,
                    status="open",
                    sealed=self._keys.seal({"text": text}, feedback_aad(public_id)),
                    key_id=self._keys.active_key,
                    created_at=now,
                    updated_at=now,
                )
            )
            detail = {"feedback": public_id, "route": route.route, "channel": channel}
            audit.by_identity(s, caller, "feedback_ask", route.archive_id, detail=detail)
            return Asked(public_id, await self._inbox(s, route.institution_code))

    async def take_message(self, openid: str, question: str) -> str:
        """A ``留言 …`` text sent to the account: the question stored, and the reply to send back
        (received and who answers where — or why it was not taken)."""
        identity = await self._identities.upsert("oa", openid, subscribed=True)  # they just wrote to us
        caller = MessageCaller(identity.id)
        try:
            asked = await self.ask(caller, question, channel=MESSAGE)
        except (BadInput, RateLimited, Unavailable) as exc:
            form = await self.ask_form(caller)
            return refused(exc.message, form.to)
        return received(asked.to, self._list_url)

    async def mine(self, caller: audit.Caller) -> list[MyQuestion]:
        """The caller's own questions, newest first."""
        async with self._sessions() as s:
            rows = await store.mine(s, caller.identity_id, MINE_LIMIT)
        return [
            MyQuestion(r.public_id, r.created_at, r.status, preview(self._open(r)["text"]), self._inbox_from(r))
            for r in rows
        ]

    async def question(self, caller: audit.Caller, public_id: str) -> QuestionPage:
        """One of the caller's questions with its answer; anyone else's is not found."""
        async with self._sessions() as s:
            row = await store.one(s, public_id) if _OPAQUE.fullmatch(public_id) else None
        if row is None or row.identity_id != caller.identity_id:
            raise NotFound("未找到这条留言，请从“我的留言”进入")
        opened = self._open(row)
        return QuestionPage(
            public_id=row.public_id,
            text=opened["text"],
            asked_at=row.created_at,
            channel=row.channel,
            status=row.status,
            reply=opened.get("reply"),
            replied_at=row.replied_at,
            to=self._inbox_from(row),
        )

    # ------------------------------------------------------------------ staff

    async def inbox(self, member: StaffMember, *, status: str = "all", page: int = 1) -> InboxList:
        """The questions in the member's scope, newest first (no text: reading one is audited)."""
        status = status if status in STATUSES else "all"
        page = max(1, page)
        hours = self._settings.staff.feedback_overdue_hours
        now = self._clock.now()
        async with self._sessions() as s:
            rows = await store.inbox_rows(s, member, status, INBOX_PAGE + 1, (page - 1) * INBOX_PAGE)
            counts = await store.inbox_counts(s, member, now - dt.timedelta(hours=hours))
        return InboxList(
            rows=[self._row(r, now) for r in rows[:INBOX_PAGE]],
            status=status,
            page=page,
            more=len(rows) > INBOX_PAGE,
            open_count=counts["open"],
            overdue_count=counts["overdue"],
            answered_count=counts["answered"],
            overdue_hours=hours,
        )

    async def read(
        self, member: StaffMember, public_id: str, *, request_id: str | None = None, client_ip: str | None = None
    ) -> InboxQuestion:
        """A question and its answer, for staff in scope; the reading is audited (``feedback_read``)."""
        async with self._sessions.begin() as s:
            row = await self._in_scope(s, member, public_id, "feedback_read", request_id, client_ip)
            opened = self._open(row)
            about = await self._about(s, row.archive_id)
            by = await self._staff_name(s, row.replied_by)
            self._staff_audit(s, member, "feedback_read", row, request_id, client_ip)
        return InboxQuestion(
            row=self._row(row, self._clock.now()),
            text=opened["text"],
            reply=opened.get("reply"),
            replied_at=row.replied_at,
            replied_by=by,
            about=about,
            overdue_hours=self._settings.staff.feedback_overdue_hours,
        )

    async def answer(
        self,
        member: StaffMember,
        public_id: str,
        reply: str,
        *,
        request_id: str | None = None,
        client_ip: str | None = None,
    ) -> str:
        """Store the answer (audited ``feedback_answer``) and push it to the asker's identity;
        returns the delivery (custom, template, failed). A question is answered once."""
        reply = clean_answer(reply)
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await self._in_scope(s, member, public_id, "feedback_answer", request_id, client_ip, lock=True)
            if row.status != "open":
                raise Conflict("这条留言已经回复过了，请刷新页面查看")
            aad = feedback_aad(row.public_id)
            sealed = self._keys.seal({**self._keys.open(row.sealed, aad), "reply": reply}, aad)
            params = {"row": row.id, "new_sealed": sealed, "new_key": self._keys.active_key, "at": now, "by": member.id}
            if (await s.execute(_ANSWER, params)).rowcount != 1:
                raise Conflict("这条留言已经回复过了，请刷新页面查看")
            self._staff_audit(s, member, "feedback_answer", row, request_id, client_ip)
            to = (await s.execute(_RECIPIENT, {"identity": row.identity_id})).first()
        answered = Answered(
            feedback_id=row.id,
            public_id=row.public_id,
            identity_id=row.identity_id,
            openid=to.openid,
            channel=to.channel,
            subscribed=bool(to.subscribed),
            who=who_answers(self._inbox_from(row)),
            answer=reply,
        )
        return await self._delivery.deliver(answered)

    # ------------------------------------------------------------------ parts

    async def _take_ask(self, identity_id: int) -> None:
        windows = [
            Window(key(self._settings, "feedback", "asks", str(identity_id), str(sec)), sec, n)
            for sec, n in ASK_WINDOWS
        ]
        try:
            await self._limits.take(windows, "feedback ask")
        except WindowFull as exc:
            if exc.window.seconds >= 86400:
                raise RateLimited(exc.retry_after, f"今天留言已达 {exc.window.limit} 条，请明天再留言") from None
            raise RateLimited(exc.retry_after, f"留言太快了，请 {exc.retry_after} 秒后再试") from None

    async def _routed(self, s: AsyncSession, caller: audit.Caller, archive: str | None) -> Route:
        """:meth:`_route`; an archive id that is not the caller's is audited (and not found)."""
        try:
            return await self._route(s, caller.identity_id, archive)
        except NotFound:
            audit.by_identity(s, caller, "feedback_ask", result="denied", reason="not_bound")
            await s.commit()
            raise

    async def _route(self, s: AsyncSession, identity_id: int, archive: str | None) -> Route:
        bound = await store.bound_archives(s, identity_id)
        if archive is not None:
            chosen = next((b for b in bound if b.public_id == archive), None) if _OPAQUE.fullmatch(archive) else None
            if chosen is None:  # someone else's archive, or none: the same answer
                raise NotFound("未找到这份档案，请从“我的档案”进入")
        else:
            chosen = pick_archive(bound)
        scene = await store.scene_of(s, identity_id) if chosen is None else None
        return route_question(chosen, scene)

    async def _inbox(self, s: AsyncSession, institution_code: str | None) -> Inbox:
        found = await store.institution(s, institution_code) if institution_code else None
        return self._inbox_of(institution_code, found.name if found else "", found.consult_phone if found else "")

    def _inbox_from(self, row: Any) -> Inbox:
        return self._inbox_of(row.institution_code, row.institution or "", row.consult_phone or "")

    def _inbox_of(self, code: str | None, name: str, phone: str) -> Inbox:
        return Inbox(name=name, consult_phone=phone or self._settings.service.consult_phone, city=code is None)

    def _open(self, row: Any) -> dict[str, Any]:
        return self._keys.open(row.sealed, feedback_aad(row.public_id))

    def _row(self, r: Any, now: dt.datetime) -> InboxRow:
        hours = self._settings.staff.feedback_overdue_hours
        return InboxRow(
            public_id=r.public_id,
            asked_at=r.created_at,
            institution=r.institution or "",
            institution_code=r.institution_code,
            county=r.county or "",
            channel=r.channel,
            route=r.route,
            status=r.status,
            asker=asker_tag(r.asker),
            overdue=is_overdue(r.status, r.created_at, now, hours),
            delivery=r.delivery,
        )

    async def _in_scope(
        self,
        s: AsyncSession,
        member: StaffMember,
        public_id: str,
        action: str,
        request_id: str | None,
        client_ip: str | None,
        *,
        lock: bool = False,
    ) -> Any:
        """The question, if the member's scope covers it; else a denied audit row and NotFound."""
        row = await store.one(s, public_id, lock=lock) if _OPAQUE.fullmatch(public_id) else None
        if row is None or not covers(member, row.county_code, row.institution_code):
            audit.record(
                s,
                actor_type="staff",
                actor_id=member.actor_id,
                action=action,
                result="denied",
                reason="not_found",
                request_id=request_id,
                client_ip=client_ip,
            )
            await s.commit()
            raise NotFound("未找到这条留言")
        return row

    def _staff_audit(
        self, s: AsyncSession, member: StaffMember, action: str, row: Any, request_id: str | None, client_ip: str | None
    ) -> None:
        audit.record(
            s,
            actor_type="staff",
            actor_id=member.actor_id,
            action=action,
            archive_id=row.archive_id,
            request_id=request_id,
            client_ip=client_ip,
            detail={"feedback": row.public_id},
        )

    async def _about(self, s: AsyncSession, archive_id: int | None) -> str | None:
        """The masked name (刘**) of the archive a question was asked about."""
        if archive_id is None:
            return None
        found = (await s.execute(_ARCHIVE_NAME, {"archive": archive_id})).first()
        return mask_name(open_fields(self._keys, found).get("name"), self._settings.privacy) if found else None

    async def _staff_name(self, s: AsyncSession, staff_id: int | None) -> str:
        found = (await s.execute(_STAFF_NAME, {"staff": staff_id})).first() if staff_id else None
        return str(self._keys.open(found.sealed, staff_aad(found.public_id)).get("name", "")) if found else ""
