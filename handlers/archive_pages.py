"""The archive as pages under ``/r/``: they mirror the JSON routes of :mod:`handlers.archive` and
call the same service. A hidden archive shows the one ``not_open`` text on the error page."""

from __future__ import annotations

import datetime as dt

from tornado.web import UIModule, url

from wechat_backend.clock import LOCAL_ZONE
from wechat_backend.records.chart import svg
from wechat_backend.records.sections import BY_KEY
from wechat_backend.records.service import RecordsService
from wechat_backend.records.trends import Series

from .base import public
from .resident import ID, ResidentPage, local_date


class ArchivePage(ResidentPage):
    @property
    def records(self) -> RecordsService:
        return self.services.records


class ArchiveCoverPage(ArchivePage):
    async def get(self, archive_id: str) -> None:
        cover = await self.records.cover(self.caller, archive_id)
        self.render("resident/archive.html", a=cover, notice=self.notice("noted"))


class ArchiveBasicPage(ArchivePage):
    async def get(self, archive_id: str) -> None:
        basic = await self.records.basic(self.caller, archive_id)
        self.render("resident/basic.html", archive_id=archive_id, fields=basic["fields"])


class ArchiveRecordsPage(ArchivePage):
    async def get(self, archive_id: str) -> None:
        kind = self.get_query_argument("kind", "") or None
        found = await self.records.records(
            self.caller, archive_id, kind=kind, cursor=self.get_query_argument("cursor", "") or None
        )
        title = BY_KEY[kind].title if kind else "全部服务记录"
        self.render("resident/records.html", archive_id=archive_id, kind=kind, title=title, found=found)


class RecordPage(ArchivePage):
    async def get(self, record_id: str) -> None:
        record = await self.records.record(self.caller, record_id)
        prominent = [f for sec in record["sections"] for f in sec["fields"] if f.get("prominent")]
        self.render("resident/record.html", r=record, prominent=prominent)


class ArchiveTrendsPage(ArchivePage):
    async def get(self, archive_id: str) -> None:
        trends = await self.records.trends(self.caller, archive_id)
        self.render("resident/trends.html", archive_id=archive_id, series=[_series(s) for s in trends["series"]])


class ArchiveAccessLogPage(ArchivePage):
    async def get(self, archive_id: str) -> None:
        log = await self.records.access_log(self.caller, archive_id)
        self.render("resident/access_log.html", archive_id=archive_id, entries=log["entries"], local_time=local_time)


class ArchiveNotePage(ArchivePage):
    async def post(self, archive_id: str) -> None:
        await self.records.set_note(self.caller, archive_id, self.form().get("note", ""))
        self.redirect(self.reverse_url("resident_archive", archive_id) + "?noted=1")


class HelpPage(ArchivePage):
    @public
    def get(self) -> None:
        self.render("resident/help.html", idle_minutes=self.services.settings.session.idle_minutes)


class TrendChart(UIModule):
    """A trend as inline SVG. Built by ``records.chart.svg``, which escapes every text it writes."""

    def render(self, series: Series) -> str:  # type: ignore[override]
        return svg(series)


def _series(data: dict) -> Series:
    """A trend as the JSON route gives it, back as the chart's input."""
    band = data["band"]
    return Series(
        key=data["key"],
        label=data["label"],
        unit=data["unit"],
        band=(band[0], band[1]) if band else None,
        points=tuple((dt.date.fromisoformat(day), value) for day, value in data["points"]),
    )


def local_time(iso: str) -> str:
    """``2026-11-25T02:00:00+00:00`` → ``2026年11月25日 10:00`` (Asia/Shanghai)."""
    at = dt.datetime.fromisoformat(iso)
    at = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(LOCAL_ZONE)
    return f"{local_date(iso)} {at:%H:%M}"


ui_modules = {"TrendChart": TrendChart}

routes = [
    url(rf"/r/archives/{ID}", ArchiveCoverPage, name="resident_archive"),
    url(rf"/r/archives/{ID}/basic", ArchiveBasicPage, name="resident_archive_basic"),
    url(rf"/r/archives/{ID}/records", ArchiveRecordsPage, name="resident_archive_records"),
    url(rf"/r/archives/{ID}/trends", ArchiveTrendsPage, name="resident_archive_trends"),
    url(rf"/r/archives/{ID}/access-log", ArchiveAccessLogPage, name="resident_archive_access_log"),
    url(rf"/r/archives/{ID}/note", ArchiveNotePage, name="resident_archive_note"),
    url(rf"/r/records/{ID}", RecordPage, name="resident_record"),
    url(r"/r/help", HelpPage, name="resident_help"),
]
