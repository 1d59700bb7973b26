"""The 工作台 login pages (the flows are in :mod:`wechat_backend.staff.login`).

``/staff/login`` is the menu's entry. In WeChat (the User-Agent says ``MicroMessenger``) it goes
through the official-account login first, then logs a linked member with a fresh SMS code in at
once, or asks for a code (``/staff/login/sms`` → ``/staff/login/code``). On a desktop browser it
shows a QR code to scan in WeChat and polls ``/staff/login/qr``; the scan sends the member a link
to ``/staff/login/confirm?t=<token>``, where — in WeChat, logged in through the official account —
the member who scanned confirms (or cancels) the desktop's login, and only then does the poll go on.

Secrets stay out of URLs: the code's challenge id and the QR attempt's browser secret ride in
cookies of their own, HttpOnly and SameSite=Strict, scoped to ``/staff/login``; the staff session in
the staff cookie (``set_staff_cookie``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tornado.web import url

from wechat_backend.errors import AppError, NotLoggedIn, TooLarge
from wechat_backend.staff.login import Asker, CodeSent, LoggedIn, staff_next
from wechat_backend.staff.qr_confirm import CONFIRM_PATH
from wechat_backend.staff.qr_login import QR_SECONDS, login_scene

from ..base import BaseHandler, public, staff_cookie_name

CODE_COOKIE = "wb_staff_code"  # the SMS code's challenge id
QR_COOKIE = "wb_staff_qr"  # the QR attempt's browser secret
LOGIN_PATH = "/staff/login"


def in_wechat(user_agent: str) -> bool:
    """WeChat's own browser (phone or PC WeChat), where the official-account login works."""
    return "MicroMessenger" in user_agent


class StaffLoginHandler(BaseHandler):
    """What the login pages share: who asks, the login's cookies, and forms that show their errors."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    @property
    def asker(self) -> Asker:
        resident = self.current_user is not None and self.current_user.kind == "resident" and not self._bearer
        return Asker(self.current_user.identity_id if resident else None, self.request_id, self.client_ip)

    @property
    def next_path(self) -> str:
        return staff_next(self.get_argument("next", None))

    def staff_session_id(self) -> str | None:
        return self.get_cookie(staff_cookie_name(self.services.settings.server.public_base_url))

    def set_login_cookie(self, name: str, value: str, seconds: int) -> None:
        self.set_cookie(
            name, value, path=LOGIN_PATH, max_age=seconds, httponly=True, secure=self.https, samesite="Strict"
        )

    def remember_code(self, sent: CodeSent) -> None:
        self.set_login_cookie(CODE_COOKIE, sent.challenge_id, self.services.settings.limits.code_ttl_seconds + 60)

    async def log_in(self, done: LoggedIn) -> None:
        """The staff cookie for the new session (any earlier one of this browser ends)."""
        await self.services.staff_login.end(self.staff_session_id())
        self.set_staff_cookie(done.session_id)
        self.clear_cookie(CODE_COOKIE, path=LOGIN_PATH)

    def go_on(self, next_path: str) -> None:
        """Redirect, or — at the end of a redirect chain that began on another site (WeChat's
        login) — a page that goes on by itself: a SameSite=Strict cookie set there is not sent
        along the rest of that chain, and the 工作台 would send the browser back to log in."""
        if self.request.headers.get("Sec-Fetch-Site") == "cross-site":
            self.render("staff/login_continue.html", next_path=next_path)
        else:
            self.redirect(next_path)

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        ns.update(member=None, role_label="")  # the layout's header: nobody is logged in yet
        return ns

    def rerender(self, error: AppError) -> bool:
        """Show ``error`` on this page's own form; False when it has none (→ the error page)."""
        return False

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self.request.method == "POST" and isinstance(exc, AppError) and not isinstance(exc, NotLoggedIn | TooLarge):
            self.set_status(exc.status)
            for name, value in exc.headers.items():
                self.set_header(name, value)
            if self.rerender(exc):
                return
        super().write_error(status_code, **kwargs)


class StaffLoginPage(StaffLoginHandler):
    @public
    async def get(self) -> None:
        login, next_path = self.services.staff_login, self.next_path
        if await self._live_staff_session():
            self.redirect(next_path)
            return
        if not in_wechat(self.request.headers.get("User-Agent", "")):
            page = await login.start_qr(self.asker, next_path, self.request.headers.get("User-Agent", ""))
            self.set_login_cookie(QR_COOKIE, page.secret, QR_SECONDS + 60)
            settings = self.services.settings
            # The demo's sandbox phone scans by typing the scene: show it there (it is no secret).
            demo_scene = login_scene(page.token) if settings.is_demo and settings.sandbox.enabled else None
            self.render(
                "staff/login.html", mode="qr", qr=page, demo_scene=demo_scene, next_path=next_path, linked_phone=None
            )
            return
        if self.asker.identity_id is None:  # WeChat's login first: it names the identity
            here = self.reverse_url("staff_login") + "?" + urlencode({"next": next_path})
            self.redirect(self.reverse_url("oauth_start") + "?" + urlencode({"next": here}))
            return
        found = await login.in_wechat(self.asker, next_path)
        if isinstance(found, LoggedIn):
            await self.log_in(found)
            self.go_on(found.next_path)
            return
        self.render("staff/login.html", mode="wechat", linked_phone=found, next_path=next_path, error=None)

    async def _live_staff_session(self) -> bool:
        """A staff session whose member may still use it (active, SMS factor fresh)."""
        session_id, store = self.staff_session_id(), self.services.web_sessions
        session = await store.load(session_id) if session_id and store else None
        if session is None or session.kind != "staff":
            return False
        return await self.services.staff.load(session.identity_id) is not None


class StaffLoginSms(StaffLoginHandler):
    """In WeChat: send the code (to the linked member's phone, or the typed one)."""

    linked_phone: str | None = None

    async def post(self) -> None:
        login = self.services.staff_login
        self.linked_phone = await login.linked_phone(self.asker)  # for the form, if it comes back
        sent = await login.send_code(self.asker, self.get_body_argument("phone", ""), self.next_path)
        self.remember_code(sent)
        self.redirect(self.reverse_url("staff_login_code"), status=303)

    def rerender(self, error: AppError) -> bool:
        self.render(
            "staff/login.html", mode="wechat", linked_phone=self.linked_phone, next_path=self.next_path, error=error
        )
        return True


class StaffLoginCode(StaffLoginHandler):
    """The code form (both ways in): a right code logs this browser in."""

    @public
    async def get(self) -> None:
        pending = await self.services.staff_login.pending(self.get_cookie(CODE_COOKIE))
        if pending is None:  # expired or used: start again
            self.redirect(self.reverse_url("staff_login") + "?" + urlencode({"next": self.next_path}))
            return
        self.render_code(pending.phone_mask, None, resent=self.get_query_argument("resent", "") == "1")

    @public
    async def post(self) -> None:
        challenge = self.get_cookie(CODE_COOKIE)
        self.pending = await self.services.staff_login.pending(challenge)
        done = await self.services.staff_login.verify(self.asker, challenge, self.get_body_argument("code", ""))
        await self.log_in(done)
        self.redirect(done.next_path, status=303)

    def rerender(self, error: AppError) -> bool:
        pending = getattr(self, "pending", None)
        self.render_code(pending.phone_mask if pending else "", error)
        return True

    def render_code(self, phone: str, error: AppError | None, *, resent: bool = False) -> None:
        limits = self.services.settings.limits
        self.render(
            "staff/login_code.html",
            phone=phone,
            minutes=max(1, limits.code_ttl_seconds // 60),
            resend_after=limits.resend_after_seconds,
            error=error,
            resent=resent,
            next_path=self.next_path,
        )


class StaffLoginResend(StaffLoginCode):
    @public
    async def get(self) -> None:
        self.redirect(self.reverse_url("staff_login_code"))

    @public
    async def post(self) -> None:
        self.pending = await self.services.staff_login.pending(self.get_cookie(CODE_COOKIE))
        sent = await self.services.staff_login.resend(self.asker, self.get_cookie(CODE_COOKIE))
        self.remember_code(sent)
        self.redirect(self.reverse_url("staff_login_code") + "?resent=1", status=303)


class StaffLoginPoll(StaffLoginHandler):
    """The desktop page's poll (JSON): ``{"state": "waiting"|"scanned"|"done"|"code"|"refused"|"expired"|"error",
    ...}``."""

    @property
    def is_api(self) -> bool:
        return True

    @public
    async def post(self) -> None:
        token = self.json_body().get("token")
        polled = await self.services.staff_login.poll_qr(
            self.asker, token if isinstance(token, str) else "", self.get_cookie(QR_COOKIE) or ""
        )
        out: dict[str, str] = {"state": polled.state}
        if polled.login is not None:
            await self.log_in(polled.login)
            out["next"] = polled.login.next_path
        elif polled.sent is not None:
            self.remember_code(polled.sent)
            out["next"] = self.reverse_url("staff_login_code")
        elif polled.message:
            out["message"] = polled.message
        if polled.state not in ("waiting", "scanned"):
            self.clear_cookie(QR_COOKIE, path=LOGIN_PATH)
        self.finish(out)


class StaffLoginConfirm(StaffLoginHandler):
    """In WeChat, from the scan's message: the member who scanned confirms or cancels the desktop's
    login. The official-account login names the member first; every refusal is this page too."""

    @public
    async def get(self) -> None:
        token = self.get_query_argument("t", "")
        if self.asker.identity_id is None:  # WeChat's login first: it names the identity
            here = self.reverse_url("staff_login_confirm") + "?" + urlencode({"t": token})
            self.redirect(self.reverse_url("oauth_start") + "?" + urlencode({"next": here}))
            return
        view = await self.services.staff_login.confirm_page(self.asker, token)
        self.render("staff/login_confirm.html", view=view, confirmed=None, error=None)

    @public
    async def post(self) -> None:
        if self.asker.identity_id is None:
            raise NotLoggedIn()
        token, decision = self.get_body_argument("t", ""), self.get_body_argument("decision", "")
        confirmed = await self.services.staff_login.answer(self.asker, token, decision)
        self.render("staff/login_confirm.html", view=None, confirmed=confirmed, error=None)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AppError) and not isinstance(exc, NotLoggedIn | TooLarge):
            self.set_status(exc.status)
            self.render("staff/login_confirm.html", view=None, confirmed=None, error=exc)
            return
        super().write_error(status_code, **kwargs)


class StaffLogout(StaffLoginHandler):
    @public
    async def post(self) -> None:
        await self.services.staff_login.end(self.staff_session_id())
        self.clear_cookie(staff_cookie_name(self.services.settings.server.public_base_url), path="/")
        self.render("staff/login.html", mode="logged_out", next_path="/staff/", linked_phone=None, error=None)


routes = [
    url(r"/staff/login", StaffLoginPage, name="staff_login"),
    url(r"/staff/login/sms", StaffLoginSms, name="staff_login_sms"),
    url(r"/staff/login/code", StaffLoginCode, name="staff_login_code"),
    url(r"/staff/login/resend", StaffLoginResend, name="staff_login_resend"),
    url(r"/staff/login/qr", StaffLoginPoll, name="staff_login_poll"),
    url(CONFIRM_PATH, StaffLoginConfirm, name="staff_login_confirm"),
    url(r"/staff/logout", StaffLogout, name="staff_logout"),
]
