"""Staff pages: each institution's QR poster to download (A4, PNG and PDF)."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.posters.service import PosterService

from .base import StaffHandler


class PosterHandler(StaffHandler):
    ability = "posters"

    @property
    def posters(self) -> PosterService:
        s = self.services
        return PosterService(s.sessions, s.wechat, s.settings)


class StaffPostersPage(PosterHandler):
    async def get(self) -> None:
        rows = await self.posters.list_for(self.member)
        city_phone = self.services.settings.service.consult_phone
        self.render("staff/posters.html", rows=rows, png=self.posters.png_available, city_phone=city_phone)


class StaffPosterFile(PosterHandler):
    async def get(self, code: str, fmt: str) -> None:
        poster = await self.posters.download(
            self.member, code, fmt, request_id=self.request_id, client_ip=self.client_ip
        )
        self.set_header("Content-Type", poster.content_type)
        self.set_header("Content-Disposition", f'attachment; filename="{poster.filename}"')
        self.finish(poster.body)


routes = [
    url(r"/staff/posters", StaffPostersPage, name="staff_posters"),
    url(r"/staff/posters/([0-9A-Za-z_-]{1,32})\.(png|pdf)", StaffPosterFile, name="staff_poster_file"),
]
