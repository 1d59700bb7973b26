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
from .ingest.service import IngestService
from .keys import KeyRotation
from .privacy import check_policy
from .redis_client import RedisHandle, open_redis
from .resources import resource_dir
from .web_sessions import SessionStore
from .wechat.api import WeChatApi, WeChatHttp
from .wechat.callback import CallbackService
from .wechat.oauth import OAuthService
from .wechat.token import AccessTokenStore


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
    wechat: WeChatApi
    # Redis-backed: None when the services were built without Redis (some CLI commands).
    tokens: AccessTokenStore | None
    web_sessions: SessionStore | None
    oauth: OAuthService | None
    callback: CallbackService

    async def close(self) -> None:
        self.ingest.close()
        await self.wechat.close()
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
    identities = IdentityService(sessions, clock)
    prefix = settings.redis.key_prefix
    wechat_http = WeChatHttp(settings.wechat)
    tokens = AccessTokenStore(settings.wechat, redis.client, wechat_http, key_prefix=prefix) if redis else None
    wechat = WeChatApi(settings.wechat, settings.miniprogram, wechat_http, tokens)
    web_sessions = SessionStore(settings.session, redis.client, clock, key_prefix=prefix) if redis else None
    oauth = OAuthService(settings, redis.client, wechat, identities, web_sessions) if redis and web_sessions else None
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
        identities=identities,
        wechat=wechat,
        tokens=tokens,
        web_sessions=web_sessions,
        oauth=oauth,
        # TODO(lead): wire send_custom to wechat.api (WeChatApi.send_custom_text) for replies after the budget.
        callback=CallbackService(
            settings,
            sessions=sessions,
            redis=redis.client if redis else None,
            identities=identities,
            clock=clock,
            send_custom=None,
        ),
    )


def make_app(services: Services) -> tornado.web.Application:
    from handlers import routes
    from handlers.base import NotFoundHandler, log_request

    s = services.settings
    rules = routes(services)
    if s.sandbox.enabled and s.is_demo:
        from .sandbox import sandbox_routes  # the offline WeChat platform; never in production

        rules += sandbox_routes(s, clock=services.clock)
    return tornado.web.Application(
        rules,
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
