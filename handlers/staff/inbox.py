"""Staff pages: the inbox of residents' questions (居民留言) and one question with its answer form.

The list shows what is in the member's scope (institution staff: their institution; county admins:
their county; city admins: everything, the city's inbox too), newest first, without the text;
opening a question is audited (``feedback_read``), out of scope is the same 404 as none.
Answering (``feedback_answer``) pushes the answer to the asker and shows how it went."""

from __future__ import annotations

import datetime as dt

from tornado.web import url

from wechat_backend.clock import LOCAL_ZONE
from wechat_backend.errors import AppError, NotFound
from wechat_backend.feedback.text import ANSWER_MAX

from ..resident import ID
from .base import StaffHandler


def local_time(at: dt.datetime) -> str:
    local = at.astimezone(LOCAL_ZONE)
    return f"{local.year}-{local.month:02d}-{local.day:02d} {local:%H:%M}"


def age_words(at: dt.datetime, now: dt.datetime) -> str:
    """How long ago: 刚刚, 12 分钟前, 5 小时前, 3 天前."""
    minutes = int((now - at).total_seconds() // 60)
    if minutes < 1:
        return "刚刚"
    if minutes < 60:
        return f"{minutes} 分钟前"
    if minutes < 24 * 60:
        return f"{minutes // 60} 小时前"
    return f"{minutes // (24 * 60)} 天前"


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and 0 < len(text) <= 5 else 1


class InboxPage(StaffHandler):
    ability = "inbox"

    async def get(self) -> None:
        status = self.get_query_argument("status", "all")
        page = _page_number(self.get_query_argument("page", "1"))
        inbox = await self.services.feedback.inbox(self.member, status=status, page=page)
        self.render("staff/inbox.html", inbox=inbox, local_time=local_time, age=self.age)

    def age(self, at: dt.datetime) -> str:
        return age_words(at, self.services.clock.now())


class InboxQuestionPage(StaffHandler):
    ability = "inbox"

    async def get(self, public_id: str) -> None:
        await self.show(public_id, typed="", error=None)

    async def post(self, public_id: str) -> None:
        reply = self.form().get("reply", "")
        try:
            await self.services.feedback.answer(
                self.member, public_id, reply, request_id=self.request_id, client_ip=self.client_ip
            )
        except NotFound:
            raise
        except AppError as error:  # too long, empty, answered meanwhile: back on the form, as typed
            self.set_status(error.status)
            await self.show(public_id, typed=reply, error=error)
            return
        self.redirect(self.reverse_url("staff_inbox_question", public_id) + "?answered=1", status=303)

    async def show(self, public_id: str, *, typed: str, error: AppError | None) -> None:
        q = await self.services.feedback.read(
            self.member, public_id, request_id=self.request_id, client_ip=self.client_ip
        )
        self.render(
            "staff/inbox_question.html",
            q=q,
            typed=typed,
            error=error,
            answered=self.get_query_argument("answered", "") == "1",
            max_len=ANSWER_MAX,
            local_time=local_time,
            age=age_words(q.row.asked_at, self.services.clock.now()),
        )


routes = [
    url(r"/staff/inbox", InboxPage, name="staff_inbox"),
    url(rf"/staff/inbox/{ID}", InboxQuestionPage, name="staff_inbox_question"),
]
