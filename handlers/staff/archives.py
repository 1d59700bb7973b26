"""开放档案: find an archive (档案编号, 身份证号, or 姓名 + 出生日期 — always in a POST body, never
in a URL), see whether its owner can read it now and why not, decide 开放 / 关闭 / 跟随上游, and
open in bulk. The logic is in ``wechat_backend/staff/opening.py`` and ``bulk_open.py``."""

from __future__ import annotations

from typing import Any

from tornado.web import url

from wechat_backend.errors import BadInput, NotFound
from wechat_backend.staff.opening import StaffCall

from .base import StaffHandler
from .counties import local_time

ID = r"([0-9A-Za-z_-]{1,24})"

# ``privacy.visibility.REASONS`` in staff words (never shown to residents: they see one text).
REASON_TEXT = {
    "ok": "可以查看",
    "county_closed": "本县尚未开放",
    "status_closed": "档案已注销",
    "sensitive_programme": "含不向居民开放的管理项目",
    "status_lost": "失访",
    "not_opened": "未开放给居民",
    "not_key_population": "当前开放阶段只开放重点人群",
}
STATUS_TEXT = {"normal": "正常", "lost": "失访", "closed": "已注销"}


class OpeningHandler(StaffHandler):
    ability = "open_archives"

    @property
    def call(self) -> StaffCall:
        return StaffCall(self.member, self.request_id, self.client_ip)

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        ns.update(reason_text=REASON_TEXT, status_text=STATUS_TEXT, local_time=local_time)
        return ns


class ArchiveSearchPage(OpeningHandler):
    async def get(self) -> None:
        self.render("staff/archives.html", error=None, matches=None)

    async def post(self) -> None:
        matches = await self.services.opening.find(self.call, self.form())
        if len(matches) == 1:
            self.redirect(self.reverse_url("staff_archive", matches[0].public_id), status=303)
            return
        self.render("staff/archives.html", error=None, matches=matches)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Bad input and "not found" come back on the search form itself, with what to do next.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, (BadInput, NotFound)) and getattr(self, "member", None) is not None:
            self.set_status(exc.status)
            self.render("staff/archives.html", error=exc.message, matches=None)
            return
        super().write_error(status_code, **kwargs)


class ArchivePage(OpeningHandler):
    async def get(self, public_id: str) -> None:
        archive = await self.services.opening.view(self.call, public_id)
        self.render("staff/archive.html", a=archive, saved=self.get_query_argument("saved", "") == "1")


class ArchiveOpeningHandler(OpeningHandler):
    async def post(self, public_id: str) -> None:
        await self.services.opening.set_opening(self.call, public_id, self.form().get("decision", ""))
        self.redirect(self.reverse_url("staff_archive", public_id) + "?saved=1", status=303)


class BulkOpenPage(OpeningHandler):
    async def get(self) -> None:
        preview = await self.services.bulk_open.preview(self.member)
        self.render("staff/archive_bulk.html", preview=preview)

    async def post(self) -> None:
        job_id = await self.services.bulk_open.start(self.call)
        self.redirect(self.reverse_url("staff_bulk_progress", job_id), status=303)


class BulkProgressPage(OpeningHandler):
    async def get(self, job_id: str) -> None:
        progress = await self.services.bulk_open.progress(self.member, job_id)
        self.render("staff/archive_bulk_progress.html", p=progress)


class BulkProgressApi(OpeningHandler):
    async def get(self, job_id: str) -> None:
        progress = await self.services.bulk_open.progress(self.member, job_id)
        self.finish(progress.as_json())


routes = [
    url(r"/staff/archives", ArchiveSearchPage, name="staff_archives"),
    url(r"/staff/archives/bulk", BulkOpenPage, name="staff_bulk_open"),
    url(rf"/staff/archives/bulk/{ID}", BulkProgressPage, name="staff_bulk_progress"),
    url(rf"/staff/api/bulk-open/{ID}", BulkProgressApi, name="staff_api_bulk_progress"),
    url(rf"/staff/archives/{ID}", ArchivePage, name="staff_archive"),
    url(rf"/staff/archives/{ID}/opening", ArchiveOpeningHandler, name="staff_archive_opening"),
]
