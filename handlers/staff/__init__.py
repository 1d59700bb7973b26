"""The 工作台 (staff pages under ``/staff/``): each module ends with ``routes = [...]``, concatenated
here in order."""

from __future__ import annotations

from . import archives, audit, counties, home, inbox, login, posters, stats

routes = [
    *login.routes,
    *home.routes,
    *counties.routes,
    *archives.routes,
    *stats.routes,
    *inbox.routes,
    *posters.routes,
    *audit.routes,
]
