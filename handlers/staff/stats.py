"""Staff pages: stats (placeholder: replace this module, keeping the route name ``staff_stats``)."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.errors import NotFound

from .base import StaffHandler


class Placeholder(StaffHandler):
    async def get(self) -> None:
        raise NotFound()


routes = [url(r"/staff/stats", Placeholder, name="staff_stats")]
