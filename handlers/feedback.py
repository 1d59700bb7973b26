"""Resident pages for questions (留言) and answers: the form (from an archive page, or on its
own), 我的留言, and one question with its answer — for its asker only (anyone else's id is the
same 404 as none). Forms are posted and redirected (Post/Redirect/Get); a refusal is shown on the
form with what was typed."""

from __future__ import annotations

import datetime as dt

from tornado.web import url

from wechat_backend.clock import LOCAL_ZONE
from wechat_backend.errors import AppError
from wechat_backend.feedback.text import QUESTION_MAX
from wechat_backend.feedback.views import AskForm

from .resident import ID, ResidentPage


def local_time(at: dt.datetime) -> str:
    """A stored UTC time as residents read it: ``2026年11月25日 10:00`` (Asia/Shanghai)."""
    local = at.astimezone(LOCAL_ZONE)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


class FeedbackListPage(ResidentPage):
    async def get(self) -> None:
        items = await self.services.feedback.mine(self.caller)
        self.render("resident/feedback_list.html", items=items, local_time=local_time)


class FeedbackNewPage(ResidentPage):
    _form: AskForm | None = None

    async def get(self) -> None:
        archive = self.get_query_argument("archive", "") or None
        self.render_form(await self.services.feedback.ask_form(self.caller, archive), "", None)

    async def post(self) -> None:
        fields = self.form()
        archive = fields.get("archive") or None
        # Where it goes, first: a refusal below is shown on the form, which names the inbox.
        self._form = await self.services.feedback.ask_form(self.caller, archive)
        asked = await self.services.feedback.ask(self.caller, fields.get("text", ""), archive=archive)
        self.redirect(self.reverse_url("resident_feedback_one", asked.public_id) + "?asked=1")

    def rerender(self, error: AppError) -> bool:
        if self._form is None:
            return False
        self.render_form(self._form, self.form().get("text", ""), error)
        return True

    def render_form(self, form: AskForm, typed: str, error: AppError | None) -> None:
        self.render("resident/feedback_new.html", f=form, typed=typed, error=error, max_len=QUESTION_MAX)


class FeedbackPage(ResidentPage):
    async def get(self, public_id: str) -> None:
        q = await self.services.feedback.question(self.caller, public_id)
        self.render("resident/feedback.html", q=q, notice=self.notice("asked"), local_time=local_time)


routes = [
    url(r"/r/feedback", FeedbackListPage, name="resident_feedback"),
    url(r"/r/feedback/new", FeedbackNewPage, name="resident_feedback_new"),
    url(rf"/r/feedback/{ID}", FeedbackPage, name="resident_feedback_one"),
]
