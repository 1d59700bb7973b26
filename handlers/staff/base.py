"""StaffHandler: every 工作台 route. The staff session rides in a cookie of its own
(``staff_cookie_name``), never the resident's, so one phone can hold both and neither is ever
taken for the other. No staff session → the staff login page (401 for the API); a resident
session (its cookie or Bearer token) and no staff session → 403; a staff session whose member is
disabled, or whose SMS factor is more than 12 hours old → the session ends and the login page
comes back. Each handler names the
ability it needs (``scope.ABILITIES``): a role without it → 403. Objects outside the member's scope
are the caller's 404 (``require_scope``)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from wechat_backend.errors import Forbidden, NotFound, NotLoggedIn
from wechat_backend.staff.scope import ROLE_LABELS, StaffMember, covers, may
from wechat_backend.web_sessions import Session

from ..base import BaseHandler, staff_cookie_name


class NotStaff(Forbidden):
    """A resident's session on a staff route: 403. The page still offers the staff login, for a
    staff member whose staff session ended while their resident one lives on (one phone, both)."""

    message = "这是工作人员页面。工作人员请登录工作台"


class StaffHandler(BaseHandler):
    ability = "home"
    member: StaffMember

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    @property
    def is_api(self) -> bool:
        return self.request.path.startswith("/staff/api/") or super().is_api

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-Id", self.request_id)
        session = await self.load_staff_session()
        if session is None and await self._load_session() is not None:
            raise NotStaff()
        member = await self.services.staff.load(session.identity_id) if session is not None else None
        if session is not None and member is None:
            await self.services.web_sessions.close(session.id)  # disabled, or the SMS factor is stale
            self.clear_cookie(staff_cookie_name(self.services.settings.server.public_base_url), path="/")
        if member is None:
            self.current_user = None
            if self.is_api or self.request.method not in ("GET", "HEAD"):
                raise NotLoggedIn("登录已过期，请重新登录工作台")
            self.redirect(self.reverse_url("staff_login") + "?" + urlencode({"next": self.request.uri}))
            return
        self.current_user = session
        self.member = member
        if not may(member, self.ability):
            raise Forbidden()
        self._xsrf_ready = True
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and self.settings.get("xsrf_cookies"):
            self.check_xsrf_cookie()

    async def load_staff_session(self) -> Session | None:
        """The staff session named by the staff cookie (a resident session id there counts as none)."""
        store = self.services.web_sessions
        session_id = self.get_cookie(staff_cookie_name(self.services.settings.server.public_base_url))
        session = await store.load(session_id) if store and session_id else None
        return session if session is not None and session.kind == "staff" else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, NotStaff) and not self.is_api:
            self.set_status(403)
            login = self.reverse_url("staff_login") + "?" + urlencode({"next": self.request.uri})
            self.render("staff/not_staff.html", message=exc.message, login_url=login)
            return
        super().write_error(status_code, **kwargs)

    def require_scope(self, county_code: str | None, institution_code: str | None = None) -> None:
        """An object outside the member's scope is the same 404 as one that does not exist."""
        if not covers(self.member, county_code, institution_code):
            raise NotFound()

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        member = getattr(self, "member", None)
        ns.update(member=member, role_label=ROLE_LABELS.get(member.role, "") if member else "", may=may)
        return ns
