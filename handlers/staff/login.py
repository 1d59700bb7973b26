"""Staff login (placeholder until the two-factor login lands)."""

from __future__ import annotations

from tornado.web import url

from ..base import BaseHandler, public


class StaffLoginPage(BaseHandler):
    @public
    async def get(self) -> None:
        self.render("staff/login.html")


class StaffLogout(BaseHandler):
    async def post(self) -> None:
        await self.end_session()
        self.redirect(self.reverse_url("staff_login"))


routes = [
    url(r"/staff/login", StaffLoginPage, name="staff_login"),
    url(r"/staff/logout", StaffLogout, name="staff_logout"),
]
