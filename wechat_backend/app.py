"""Composition root: every service is built here from Settings, and the Tornado app from them.

Nothing connects at import time. ``build_services`` opens the database engine and (when asked)
Redis; ``Services.close`` releases them. Handlers reach services through the ``services`` setting.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from typing import Any

import tornado.httputil
import tornado.web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from . import audit
from .audit_chain import AuditChain
from .binding import BindingService, BoundArchives, ConsentService, RateLimits
from .binding.notice import KIND as BINDING_ADDED
from .binding.notice import binding_added_sender
from .clock import Clock
from .config import ConfigError, Settings, database_url
from .counties import CountyService
from .crypto import KeyRing
from .db import create_engine, read_session_factory, session_factory
from .identities import IdentityService
from .ingest.service import IngestService
from .keys import KeyRotation
from .metrics import Metrics
from .notify import Outbox
from .privacy import check_policy
from .records.service import RecordsService
from .redis_client import RedisHandle, open_redis
from .resources import resource_dir
from .sms import SmsSender, make_sender
from .web_sessions import SessionStore
from .wechat.api import WeChatApi, WeChatHttp
from .wechat.callback import CallbackService
from .wechat.oauth import MiniProgramLogin, OAuthService
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
    mp_login: MiniProgramLogin | None
    callback: CallbackService
    metrics: Metrics
    sms: SmsSender
    consent: ConsentService
    binding: BindingService
    bound: BoundArchives
    records: RecordsService
    outbox: Outbox
    audit_chain: AuditChain

    async def close(self) -> None:
        await self.callback.drain()  # replies still being worked on in the background
        self.ingest.close()
        await self.sms.close()
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
    audit.configure(keyring)  # audit rows seal their reasons with it
    redis = await open_redis(settings) if with_redis else None
    identities = IdentityService(sessions, clock)
    prefix = settings.redis.key_prefix
    wechat_http = WeChatHttp(settings.wechat)
    tokens = AccessTokenStore(settings.wechat, redis.client, wechat_http, key_prefix=prefix) if redis else None
    wechat = WeChatApi(settings.wechat, settings.miniprogram, wechat_http, tokens)
    web_sessions = SessionStore(settings.session, redis.client, clock, key_prefix=prefix) if redis else None
    oauth = None
    if redis and web_sessions:
        oauth = OAuthService(settings, redis.client, wechat, identities, web_sessions, clock)
    mp_login = MiniProgramLogin(wechat, identities, web_sessions) if web_sessions else None
    metrics = Metrics(wechat.calls.snapshot)
    sms = make_sender(settings)
    consent = ConsentService(sessions, clock)
    outbox = Outbox(
        sessions, keyring, settings.notify, clock, {BINDING_ADDED: binding_added_sender(settings, wechat, clock.now)}
    )
    binding = BindingService(
        settings,
        sessions=sessions,
        keyring=keyring,
        limits=RateLimits(redis.client if redis else None, clock),
        sms=sms,
        consent=consent,
        clock=clock,
        on_sms=metrics.count_sms,
        outbox=outbox,
    )
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
        mp_login=mp_login,
        # A reply that misses WeChat's 5 s budget goes out later as a customer-service message.
        callback=CallbackService(
            settings,
            sessions=sessions,
            redis=redis.client if redis else None,
            identities=identities,
            clock=clock,
            send_custom=wechat.send_custom_text,
        ),
        metrics=metrics,
        sms=sms,
        consent=consent,
        binding=binding,
        bound=BoundArchives(sessions, keyring, settings.privacy, clock, reads=read_session_factory(engine)),
        records=RecordsService(sessions, keyring, settings.privacy, clock),
        outbox=outbox,
        audit_chain=AuditChain(sessions, keyring, settings.security, settings.data_dir, clock),
    )


class WebApp(tornado.web.Application):
    """The Tornado application: counts requests in flight so a shutdown can let them finish, and
    holds every request body to ``[limits] max_body_bytes`` before any of it is read."""

    in_flight = 0
    body_cap = 65536  # make_app sets [limits] max_body_bytes
    too_large_handler: type[tornado.web.RequestHandler] | None = None

    def get_handler_delegate(
        self,
        request: tornado.httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> Any:
        # Called once a request's headers have arrived (start_request is also called for a
        # keep-alive connection merely waiting for its next request, which is not in flight).
        self.in_flight += 1
        # A route that streams its body sets its own cap (tornado's set_max_body_size in prepare).
        if not getattr(target_class, "_stream_request_body", False) and request.connection is not None:
            declared = _content_length(request)
            if declared > self.body_cap and self.too_large_handler is not None:
                # Answered from the headers: the body is never read, the connection closes after.
                request.connection.set_max_body_size(declared)
                return super().get_handler_delegate(request, self.too_large_handler)
            request.connection.set_max_body_size(self.body_cap)  # chunked bodies too
        return super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        self.in_flight = max(0, self.in_flight - 1)  # every answered request passes here once
        super().log_request(handler)

    async def drain(self, timeout: float) -> int:
        """Wait until no request is in flight, or ``timeout`` seconds; returns how many remain."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.in_flight


def _content_length(request: tornado.httputil.HTTPServerRequest) -> int:
    """The declared body length; 0 when absent or not a number (tornado refuses those itself)."""
    value = request.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else 0


def make_app(services: Services) -> WebApp:
    from handlers import routes
    from handlers.archive_pages import ui_modules
    from handlers.base import BodyTooLargeHandler, NotFoundHandler, log_request
    from handlers.headers import SecurityHeaders

    s = services.settings
    rules = routes(services)
    if s.sandbox.enabled and s.is_demo:
        from .sandbox import sandbox_routes  # the offline WeChat platform; never in production

        rules += sandbox_routes(s, clock=services.clock)
    app = WebApp(
        rules,
        services=services,
        cookie_secret=s.server.cookie_secret,
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Lax", "secure": s.server.public_base_url.startswith("https://")},
        template_path=str(resource_dir("templates")),
        ui_modules=ui_modules,
        static_path=str(resource_dir("static")),
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        debug=s.server.debug,
        compress_response=True,
    )
    app.add_transform(SecurityHeaders)
    app.body_cap = s.limits.max_body_bytes
    app.too_large_handler = BodyTooLargeHandler
    return app


def settle_heap() -> None:
    """Call once the application is built, before serving. Collect once, then move every object
    alive now (modules, mapped classes, compiled statements, templates) out of the collector's
    sight (``gc.freeze``): a full collection then walks only what requests allocate. Measured on
    the bind round trip: full-collection pauses of about 48 ms, each stalling every request in
    flight and setting the p99, became about 4 ms."""
    gc.collect()
    gc.freeze()
