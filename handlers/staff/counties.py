"""开放设置: each county's switch “个人档案是否显示健康档案开放给居民” and its rollout phase
(county admins their own county, city admins every county; see ``staff/county_settings.py``)."""

from __future__ import annotations

import datetime as dt

from tornado.web import url

from wechat_backend.clock import LOCAL_ZONE
from wechat_backend.staff.opening import StaffCall
from wechat_backend.staff.scope import ROLE_LABELS

from .base import StaffHandler


def local_time(at: dt.datetime | None) -> str:
    """A stored UTC timestamp as Beijing time, to the minute."""
    if at is None:
        return ""
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M")


class CountySettingsPage(StaffHandler):
    ability = "county_settings"

    async def get(self) -> None:
        counties = await self.services.county_settings.list(self.member)
        saved = self.get_query_argument("saved", "")
        self.render(
            "staff/counties.html", counties=counties, saved=saved, local_time=local_time, role_labels=ROLE_LABELS
        )

    async def post(self) -> None:
        form = self.form()
        code = form.get("county", "")
        await self.services.county_settings.set(
            StaffCall(self.member, self.request_id, self.client_ip),
            code,
            form.get("opening", ""),
            form.get("phase", ""),
        )
        self.redirect(self.reverse_url("staff_counties") + f"?saved={code}#county-{code}", status=303)


routes = [url(r"/staff/counties", CountySettingsPage, name="staff_counties")]
