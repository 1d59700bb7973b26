"""The site's front page: what this service is and how residents get to it. No login.

Residents reach their archive through the official account (关注公众号 → 我的档案); someone who
types the bare address, or follows a link to it, learns that here rather than meeting a 404.
"""

from __future__ import annotations

from tornado.web import url

from .base import BaseHandler, public


class SiteHomeHandler(BaseHandler):
    @public
    async def get(self) -> None:
        self.render("site_home.html", service_name=self.services.settings.service.name)


routes = [url(r"/", SiteHomeHandler, name="site_home")]
