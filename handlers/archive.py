"""What a resident reads of a bound archive, as JSON: the cover, its sections, one record, the
trends and who read it. Every answer is ``no-store``; shapes are in DESIGN.md."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.records.service import RecordsService

from .api import ID, ApiHandler


class ArchiveApiHandler(ApiHandler):
    @property
    def records(self) -> RecordsService:
        return self.services.records


class ArchiveCoverHandler(ArchiveApiHandler):
    async def get(self, archive_id: str) -> None:
        self.write_json(await self.records.cover(self.caller, archive_id))


class ArchiveBasicHandler(ArchiveApiHandler):
    async def get(self, archive_id: str) -> None:
        self.write_json(await self.records.basic(self.caller, archive_id))


class ArchiveRecordsHandler(ArchiveApiHandler):
    async def get(self, archive_id: str) -> None:
        kind, cursor = self.get_query_argument("kind", None), self.get_query_argument("cursor", None)
        self.write_json(await self.records.records(self.caller, archive_id, kind=kind or None, cursor=cursor or None))


class RecordHandler(ArchiveApiHandler):
    async def get(self, record_id: str) -> None:
        self.write_json(await self.records.record(self.caller, record_id))


class ArchiveTrendsHandler(ArchiveApiHandler):
    async def get(self, archive_id: str) -> None:
        self.write_json(await self.records.trends(self.caller, archive_id))


class ArchiveAccessLogHandler(ArchiveApiHandler):
    async def get(self, archive_id: str) -> None:
        self.write_json(await self.records.access_log(self.caller, archive_id))


class ArchiveNoteHandler(ArchiveApiHandler):
    async def put(self, archive_id: str) -> None:
        self.write_json(await self.records.set_note(self.caller, archive_id, self.json_body().get("note")))


routes = [
    url(rf"/api/v1/archives/{ID}", ArchiveCoverHandler, name="api_archive"),
    url(rf"/api/v1/archives/{ID}/basic", ArchiveBasicHandler, name="api_archive_basic"),
    url(rf"/api/v1/archives/{ID}/records", ArchiveRecordsHandler, name="api_archive_records"),
    url(rf"/api/v1/archives/{ID}/trends", ArchiveTrendsHandler, name="api_archive_trends"),
    url(rf"/api/v1/archives/{ID}/access-log", ArchiveAccessLogHandler, name="api_archive_access_log"),
    url(rf"/api/v1/archives/{ID}/note", ArchiveNoteHandler, name="api_archive_note"),
    url(rf"/api/v1/records/{ID}", RecordHandler, name="api_record"),
]
