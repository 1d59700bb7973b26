"""统计: the assessment's figures for the member's scope (``stats.figures.scope_for``), with a chart
drawn as inline SVG and CSV / Excel downloads of the same rows. The filters ride in the query string
(dates and a county code: nothing personal). Every view and every download is audited."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.web import url

from wechat_backend.stats.chart import chart_rows, layout, percent
from wechat_backend.stats.export import DEFINITIONS, filename, stock_note, to_csv, to_xlsx
from wechat_backend.stats.figures import StatsService, Viewer, scope_for
from wechat_backend.stats.period import parse_period, period_or_message

from .base import StaffHandler

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class StatsHandler(StaffHandler):
    ability = "stats"

    @property
    def stats(self) -> StatsService:
        return StatsService(self.services.sessions, self.services.clock)

    @property
    def viewer(self) -> Viewer:
        return Viewer("staff", self.member.actor_id, self.request_id, self.client_ip)

    def filters(self) -> dict[str, str]:
        return {name: self.get_query_argument(name, "")[:40] for name in ("from", "to", "county")}


class StatsPage(StatsHandler):
    async def get(self) -> None:
        form = self.filters()
        scope = scope_for(self.member, form["county"])
        period, error = period_or_message(form["from"], form["to"], self.stats.today)
        figures = await self.stats.figures(scope, period, self.viewer) if period else None
        if error:
            self.set_status(400)
        else:  # the form and the downloads say the dates the page counted
            form |= {"from": period.start.isoformat(), "to": period.end.isoformat()}
        query = urlencode({k: v for k, v in form.items() if v})
        self.render(
            "staff/stats.html",
            form=form,
            error=error,
            figures=figures,
            chart=layout(chart_rows(figures)) if figures else None,
            note=stock_note(figures) if figures else None,
            percent=percent,
            definitions=DEFINITIONS,
            query=f"?{query}" if query else "",
        )


class StatsExport(StatsHandler):
    async def get(self, kind: str) -> None:
        form = self.filters()
        scope = scope_for(self.member, form["county"])
        period = parse_period(form["from"], form["to"], self.stats.today)
        figures = await self.stats.figures(scope, period, self.viewer, export=kind)
        self.set_header("Content-Type", CONTENT_TYPES[kind])
        self.set_header("Content-Disposition", f'attachment; filename="{filename(figures, kind)}"')
        self.finish(to_csv(figures, bom=True) if kind == "csv" else to_xlsx(figures))


routes = [
    url(r"/staff/stats", StatsPage, name="staff_stats"),
    url(r"/staff/stats\.(csv|xlsx)", StatsExport, name="staff_stats_export"),
]
