"""审计日志 for county and city admins: the filtered list and its CSV export
(``wechat_backend/audit_viewer``). Filters travel in the query string, but a 健康档案编号 typed
into the form is posted and comes back as the archive's public id (no archive number in a URL)."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.audit_viewer import AuditPage, AuditViewer, Looker

from .base import StaffHandler


class AuditHandler(StaffHandler):
    ability = "audit"

    @property
    def viewer(self) -> AuditViewer:
        s = self.services
        return AuditViewer(s.sessions, s.keyring, s.clock)

    @property
    def looker(self) -> Looker:
        return Looker(self.member, self.request_id, self.client_ip)

    def query_args(self) -> dict[str, str]:
        return {k: self.get_query_argument(k, "") for k in self.request.query_arguments}


class StaffAuditPage(AuditHandler):
    async def get(self) -> None:
        self.show(await self.viewer.page(self.looker, self.query_args()))

    async def post(self) -> None:
        result = await self.viewer.submit(self.looker, self.form())
        if isinstance(result, AuditPage):
            self.show(result)
            return
        self.redirect(self.reverse_url("staff_audit") + result, status=303)

    def show(self, page: AuditPage) -> None:
        self.set_status(page.status)
        self.render("staff/audit.html", page=page)


class StaffAuditCsv(AuditHandler):
    async def get(self) -> None:
        export = await self.viewer.export(self.looker, self.query_args())
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{export.filename}"')
        async for chunk in export.chunks:  # streamed: a large export never sits in memory
            self.write(chunk)
            await self.flush()


routes = [
    url(r"/staff/audit", StaffAuditPage, name="staff_audit"),
    url(r"/staff/audit\.csv", StaffAuditCsv, name="staff_audit_csv"),
]
