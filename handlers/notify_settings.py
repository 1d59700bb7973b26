"""提醒设置: which pushes a resident wants, per bound archive — as JSON (mini-program, and the
official-account pages with the session cookie) and as the ``/r/settings`` form. The choices and
their checks live in :mod:`wechat_backend.notify.prefs`."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.notify.prefs import NotifyPrefs

from .api import ApiHandler
from .resident import ResidentPage


class NotifySettingsHandler(ApiHandler):
    @property
    def prefs(self) -> NotifyPrefs:
        return self.services.notify_prefs

    async def get(self) -> None:
        self.write_json(await self.prefs.get(self.caller))

    async def put(self) -> None:
        self.write_json(await self.prefs.put(self.caller, self.json_body()))


class NotifySettingsPage(ResidentPage):
    @property
    def prefs(self) -> NotifyPrefs:
        return self.services.notify_prefs

    async def get(self) -> None:
        state = await self.prefs.get(self.caller)
        notify = self.services.settings.notify
        self.render(
            "resident/settings.html",
            archives=state["archives"],
            kinds=self.prefs.kinds(),
            notice=self.notice("saved"),
            lead_days=notify.lead_days,
            quiet_start=notify.quiet_start,
            quiet_end=notify.quiet_end,
        )

    async def post(self) -> None:
        body = self.prefs.form_body(self.get_body_arguments("archive"), self.get_body_arguments("on"))
        await self.prefs.put(self.caller, body)
        self.redirect(self.reverse_url("resident_settings") + "?saved=1")


routes = [
    url(r"/api/v1/notify/settings", NotifySettingsHandler, name="api_notify_settings"),
    url(r"/r/settings", NotifySettingsPage, name="resident_settings"),
]
