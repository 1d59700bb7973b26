"""Tornado request handlers: parse input, call one service, render or serialize.

Each module ends with ``routes = [...]``; they are concatenated here explicitly, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado.routing import Rule

from . import (
    api,
    archive,
    archive_pages,
    feedback,
    health,
    ingest,
    notify_settings,
    oauth,
    resident,
    site,
    staff,
    wechat,
)

if TYPE_CHECKING:
    from wechat_backend.services import Services


def routes(services: Services) -> list[Rule]:
    return [
        *site.routes,
        *health.routes,
        *oauth.routes,
        *resident.routes,
        *archive_pages.routes,
        *api.routes,
        *archive.routes,
        *notify_settings.routes,
        *feedback.routes,
        *staff.routes,
        *ingest.routes,
        *wechat.routes,
    ]
