"""Resident pages (official-account H5). Each needs a logged-in resident: without a session the
page goes through the WeChat login and comes back (``BaseHandler.prepare``)."""

from __future__ import annotations

from tornado.web import url

from .base import BaseHandler


class ResidentHomeHandler(BaseHandler):
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.render("resident/home.html", idle_minutes=self.services.settings.session.idle_minutes)


routes = [url(r"/r/home", ResidentHomeHandler, name="resident_home")]
