"""Composition root: every service is built here from Settings, and the Tornado app from them.

Nothing connects at import time. ``build_services`` opens the database engine and (when asked)
Redis; ``Services.close`` releases them. Handlers reach services through the ``services`` setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import tornado.web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .clock import Clock
from .config import ConfigError, Settings, database_url
from .counties import CountyService
from .crypto import KeyRing
from .db import create_engine, session_factory
from .identities import IdentityService
from .ingest import IngestService
from .keys import KeyRotation
from .privacy import check_policy
from .redis_client import RedisHandle, open_redis
from .resources import resource_dir


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: RedisHandle | None
    keyring: KeyRing
    counties: CountyService
    ingest: IngestService
    key_rotation: KeyRotation
    identities: IdentityService

    async def close(self) -> None:
        self.ingest.close()
        if self.redis is not None:
            await self.redis.close()
        await self.engine.dispose()


async def build_services(settings: Settings, *, clock: Clock | None = None, with_redis: bool = True) -> Services:
    clock = clock or Clock()
    try:
        check_policy(settings.privacy)
    except ValueError as exc:
        raise ConfigError(f"[privacy] 中的编码无法识别：{exc}") from None
    engine = create_engine(database_url(settings), pool_size=settings.database.pool_size, echo=settings.database.echo)
    sessions = session_factory(engine)
    keyring = KeyRing.from_settings(settings.security)
    redis = await open_redis(settings) if with_redis else None
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        redis=redis,
        keyring=keyring,
        counties=CountyService(sessions),
        ingest=IngestService(
            sessions, keyring, settings.privacy, settings.ingest, today=clock.today, security=settings.security
        ),
        key_rotation=KeyRotation(sessions, keyring),
        identities=IdentityService(sessions, clock),
    )


def make_app(services: Services) -> tornado.web.Application:
    from handlers import routes
    from handlers.base import NotFoundHandler, log_request

    s = services.settings
    return tornado.web.Application(
        routes(services),
        services=services,
        cookie_secret=s.server.cookie_secret,
        xsrf_cookies=True,
        template_path=str(resource_dir("templates")),
        static_path=str(resource_dir("static")),
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        debug=s.server.debug,
        compress_response=True,
    )
