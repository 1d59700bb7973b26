"""Resident pages (official-account H5): my archives, the privacy notice, binding and unbinding.

Each needs a logged-in resident: without a session a page goes through the WeChat login and comes
back (``BaseHandler.prepare``). Pages are plain forms posted and redirected (Post/Redirect/Get) and
call the same services as the JSON API. An ``AppError`` from a posted form re-renders that form
with the message; anything else gets the error page.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar
from urllib.parse import urlencode

from tornado.web import url

from wechat_backend.binding.rules import RELATION_LABELS, RELATIONS
from wechat_backend.clock import LOCAL_ZONE
from wechat_backend.errors import AppError, BadInput, ConsentRequired, NotFound, NotLoggedIn, TooLarge
from wechat_backend.wechat.oauth import safe_next

from .base import BaseHandler, public

OPAQUE = r"[0-9A-Za-z_-]{1,24}"  # archive, binding and bind ids
ID = rf"({OPAQUE})"

# The masked phone the code went to, for the code page: never in the URL, never in clear.
SENT_TO_COOKIE = "wb_bind_sent"
# Typed back into the bind form after an error; the ID number, archive number and phone never are.
KEPT_FIELDS = ("relation", "name")


class ResidentPage(BaseHandler):
    """A resident page: never cached; a form's refusal is shown on the form itself."""

    def set_default_headers(self) -> None:
        # Also after ``clear()`` in ``send_error``: error pages and redirects are not cached either.
        self.set_header("Cache-Control", "no-store")

    def rerender(self, error: AppError) -> bool:
        """Show ``error`` on this page's own form; False when it has none (→ the error page)."""
        return False

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ConsentRequired):
            self.redirect(consent_url(self, self.reverse_url("resident_bind")))
            return
        on_form = self.request.method == "POST" and self.current_user is not None
        if on_form and isinstance(exc, AppError) and not isinstance(exc, (NotLoggedIn, TooLarge)):
            self.set_status(exc.status)
            for name, value in exc.headers.items():
                self.set_header(name, value)
            if self.rerender(exc):
                return
        super().write_error(status_code, **kwargs)

    def notice(self, *flags: str) -> str | None:
        """Which one-time notice (``?bound=1`` …) the redirect asked for."""
        return next((f for f in flags if self.get_query_argument(f, "") == "1"), None)

    def remember_sent_to(self, bind_id: str, masked_phone: str) -> None:
        ttl = self.services.settings.limits.code_ttl_seconds
        self.set_signed_cookie(
            SENT_TO_COOKIE,
            f"{bind_id}|{masked_phone}",
            expires_days=None,
            max_age=ttl,
            path=self.reverse_url("resident_bind"),
            httponly=True,
            secure=self.services.settings.server.public_base_url.startswith("https://"),
            samesite="Lax",
        )

    def sent_to(self, bind_id: str) -> str | None:
        ttl_days = self.services.settings.limits.code_ttl_seconds / 86400
        value = self.get_signed_cookie(SENT_TO_COOKIE, max_age_days=ttl_days)
        found, _, masked = (value or b"").decode().partition("|")
        return masked if found == bind_id and masked else None


class ResidentHomeHandler(ResidentPage):
    async def get(self) -> None:
        archives = await self.services.bound.list(self.caller)
        details = await self.services.records.home_details(self.caller, [a["id"] for a in archives])
        self.render(
            "resident/home.html",
            archives=archives,
            details=details,
            notice=self.notice("bound", "unbound"),
            idle_minutes=self.services.settings.session.idle_minutes,
        )


class ConsentPageHandler(ResidentPage):
    async def get(self) -> None:
        self.render_notice(self.get_query_argument("next", ""), None)

    async def post(self) -> None:
        fields = self.form()
        await self.services.consent.agree(
            self.caller.identity_id, fields.get("version", ""), request_id=self.request_id
        )
        wanted = fields.get("next", "")
        self.redirect(wanted if safe_next(wanted) == wanted else self.reverse_url("resident_bind"))

    def rerender(self, error: AppError) -> bool:
        self.render_notice(self.form().get("next", ""), error)
        return True

    def render_notice(self, next_path: str, error: AppError | None) -> None:
        notice = self.services.consent.notice()
        self.render(
            "resident/consent.html",
            notice=notice,
            paragraphs=str(notice["text"]).split("\n"),
            next_path=next_path[:1024],
            error=error,
        )


class BindFormHandler(ResidentPage):
    async def get(self) -> None:
        if not await self.services.consent.has_agreed(self.caller.identity_id):
            self.redirect(consent_url(self, self.reverse_url("resident_bind")))
            return
        self.render_form({"relation": "self"}, None)

    async def post(self) -> None:
        started = await self.services.binding.start_from(self.caller, self.form())
        self.remember_sent_to(started["bind_id"], started["phone"])
        self.redirect(self.reverse_url("resident_bind_code", started["bind_id"]))

    def rerender(self, error: AppError) -> bool:
        typed = self.form()
        self.render_form({k: typed.get(k, "") for k in KEPT_FIELDS}, error)
        return True

    def render_form(self, values: dict[str, str], error: AppError | None) -> None:
        self.render(
            "resident/bind.html",
            values=values,
            relations=[(r, RELATION_LABELS[r]) for r in RELATIONS],
            error=error,
            error_field=error.extra.get("field") if error else None,
            consult_phone=error.extra.get("consult_phone") if error else None,
        )


class BindCodeHandler(ResidentPage):
    """The code page of one bind attempt. A link whose code ran out, that was used, or that is not
    (or no longer) one goes back to the bind form with the reason; someone else's bind id reads as
    one that never existed."""

    AGAIN: ClassVar[dict[str, str]] = {
        "expired": "验证码已过期，请重新获取",
        "done": "这次绑定已经完成，可在“我的档案”中查看",
        "unknown": "这次绑定已失效，请重新填写",
    }

    async def get(self, bind_id: str) -> None:
        state = await self.services.binding.attempt_state(self.caller, bind_id)
        if state != "open":
            self.render_form_again(state)
            return
        self.render_code(bind_id, None)

    async def post(self, bind_id: str) -> None:
        state = await self.services.binding.attempt_state(self.caller, bind_id, "bind_verify")
        if state != "open":
            self.set_status(400)
            self.render_form_again(state)
            return
        await self.services.binding.verify(self.caller, bind_id, self.form().get("code", ""))
        await self.renew_session()
        self.clear_cookie(SENT_TO_COOKIE, path=self.reverse_url("resident_bind"))
        self.redirect(self.reverse_url("resident_home") + "?bound=1")

    def rerender(self, error: AppError) -> bool:
        # Gone meanwhile (or, for a resend, finished): the code page would only lead here again.
        if isinstance(error, NotFound) or error.extra.get("field") == "bind_id":
            self.set_status(400)
            self.render_form_again("unknown" if isinstance(error, NotFound) else "expired")
        else:
            self.render_code(self.path_args[0], error)
        return True

    def render_code(self, bind_id: str, error: AppError | None) -> None:
        limits = self.services.settings.limits
        self.render(
            "resident/code.html",
            bind_id=bind_id,
            sent_to=self.sent_to(bind_id),
            notice=self.notice("resent"),
            error=error,
            minutes=max(1, limits.code_ttl_seconds // 60),
            resend_after=limits.resend_after_seconds,
        )

    def render_form_again(self, state: str) -> None:
        """The bind form (it posts to ``/r/bind``), saying why the code page does not apply."""
        self.render(
            "resident/bind.html",
            values={"relation": "self"},
            relations=[(r, RELATION_LABELS[r]) for r in RELATIONS],
            error=BadInput("bind_id", self.AGAIN.get(state, self.AGAIN["unknown"])),
            error_field="bind_id",
            consult_phone=None,
        )


class BindResendHandler(BindCodeHandler):
    async def get(self, bind_id: str) -> None:
        self.redirect(self.reverse_url("resident_bind_code", bind_id))

    async def post(self, bind_id: str) -> None:
        # No look first: a code that ran out can be sent again; what cannot comes back as an error.
        started = await self.services.binding.resend(self.caller, bind_id)
        self.remember_sent_to(bind_id, started["phone"])
        self.redirect(self.reverse_url("resident_bind_code", bind_id) + "?resent=1")


class BindingsPageHandler(ResidentPage):
    async def get(self, archive_id: str) -> None:
        bindings = await self.services.bound.bindings_of(self.caller, archive_id)  # only for the owner
        archive = await self.services.bound.get(self.caller, archive_id)
        self.render(
            "resident/bindings.html",
            archive=archive,
            bindings=bindings,
            notice=self.notice("removed"),
            local_date=local_date,
        )


class BindingDeleteHandler(ResidentPage):
    async def post(self, binding_id: str) -> None:
        archive_id = self.form().get("archive", "")
        await self.services.bound.unbind(self.caller, binding_id)
        # The owner who removed someone else's binding goes back to that list.
        if re.fullmatch(OPAQUE, archive_id):
            self.redirect(self.reverse_url("resident_archive_bindings", archive_id) + "?removed=1")
        else:
            self.redirect(self.reverse_url("resident_home") + "?unbound=1")


class LogoutPageHandler(ResidentPage):
    @public  # logged out already is logged out: the same page
    async def post(self) -> None:
        await self.end_session()
        self.render("resident/logged_out.html")


def consent_url(handler: BaseHandler, next_path: str) -> str:
    return handler.reverse_url("resident_consent") + "?" + urlencode({"next": next_path})


def local_date(iso: str) -> str:
    """``2026-11-25T02:00:00+00:00`` → ``2026年11月25日`` (the date in Asia/Shanghai)."""
    at = dt.datetime.fromisoformat(iso)
    day = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(LOCAL_ZONE).date()
    return f"{day.year}年{day.month}月{day.day}日"


routes = [
    url(r"/r/home", ResidentHomeHandler, name="resident_home"),
    url(r"/r/logout", LogoutPageHandler, name="resident_logout"),
    url(r"/r/consent", ConsentPageHandler, name="resident_consent"),
    url(r"/r/bind", BindFormHandler, name="resident_bind"),
    url(rf"/r/bind/{ID}", BindCodeHandler, name="resident_bind_code"),
    url(rf"/r/bind/{ID}/resend", BindResendHandler, name="resident_bind_resend"),
    url(rf"/r/archives/{ID}/bindings", BindingsPageHandler, name="resident_archive_bindings"),
    url(rf"/r/bindings/{ID}/delete", BindingDeleteHandler, name="resident_binding_delete"),
]
