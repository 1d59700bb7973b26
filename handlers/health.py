"""Operations: liveness, readiness, Prometheus metrics, WeChat's domain-verification files."""

from __future__ import annotations

import logging

from tornado.web import url

from wechat_backend.errors import Forbidden, NotFound, Unavailable
from wechat_backend.health import failing_parts
from wechat_backend.metrics import CONTENT_TYPE

from .base import BaseHandler, public

log = logging.getLogger("wechat_backend.web")


class HealthHandler(BaseHandler):
    @public
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok"})


class ReadyHandler(BaseHandler):
    @public
    async def get(self) -> None:
        failing = await failing_parts(self.services.engine, self.services.redis)
        self.set_header("Cache-Control", "no-store")
        if failing and self.from_monitor:
            raise Unavailable(f"服务暂时不可用：{'、'.join(failing)} 无法连接", failing=failing)
        if failing:
            raise Unavailable()  # which part is failing is for the monitoring hosts only
        self.write({"status": "ok"})


class MetricsHandler(BaseHandler):
    @public
    async def get(self) -> None:
        if not self.from_monitor:  # the client's address, also behind a trusted proxy
            raise Forbidden()
        services = self.services
        try:
            pending, oldest = await services.outbox.depth()
            now = services.clock.now()
            stopped = await services.outbox.quota.paused(now)
            until = services.outbox.quota.until
            services.metrics.set_outbox(pending, oldest, until.timestamp() if stopped and until else 0.0)
        except Exception as exc:  # the database is down: the rest of the page still helps
            log.warning("outbox depth unavailable for /metrics (%s)", type(exc).__name__)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.write(services.metrics.render())


class DomainVerificationHandler(BaseHandler):
    """WeChat asks for ``MP_verify_<code>.txt`` at the site root to prove the domain is ours."""

    @public
    def get(self, name: str) -> None:
        path = self.services.settings.data_dir / name
        if not path.is_file():
            raise NotFound()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write(path.read_bytes())


routes = [
    url(r"/healthz", HealthHandler, name="healthz"),
    url(r"/readyz", ReadyHandler, name="readyz"),
    url(r"/metrics", MetricsHandler, name="metrics"),
    url(r"/(MP_verify_[A-Za-z0-9]{1,64}\.txt)", DomainVerificationHandler, name="domain_verification"),
]
