"""Liveness for load balancers and process supervisors."""

from __future__ import annotations

from tornado.web import url

from .base import BaseHandler, public


class HealthHandler(BaseHandler):
    @public
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok"})


routes = [url(r"/healthz", HealthHandler, name="healthz")]
