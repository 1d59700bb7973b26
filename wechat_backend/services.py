"""The services a process runs, built once from Settings (the composition root of everything that
is not HTTP). ``build_services`` opens the database engine and (when asked) Redis;
``Services.close`` releases them. Nothing connects at import time. The Tornado application is
built from them in :mod:`wechat_backend.app`; handlers reach them through its ``services`` setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from . import audit
from .audit_chain import AuditChain
from .binding import BindingService, BoundArchives, ConsentService, RateLimits
from .binding.notice import binding_added_sender
from .clock import Clock
from .config import ConfigError, Settings, database_url
from .counties import CountyService
from .crypto import KeyRing
from .db import create_engine, read_session_factory, session_factory
from .feedback import FeedbackService
from .identities import IdentityService
from .ingest.service import IngestService
from .keys import KeyRotation
from .metrics import Metrics
from .notify import Outbox, QuotaFlag
from .notify.prefs import NotifyPrefs
from .notify.queue import Queuer
from .notify.scan import DueScanner
from .notify.senders import senders, template_kinds
from .privacy import check_policy
from .records.service import RecordsService
from .redis_client import RedisHandle, open_redis
from .sms import SmsSender, make_sender
from .staff.accounts import StaffAccounts
from .staff.bulk_open import BulkOpen
from .staff.county_settings import CountySettings
from .staff.login import StaffLogin
from .staff.opening import ArchiveOpening
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
    queuer: Queuer
    due_scan: DueScanner
    notify_prefs: NotifyPrefs
    audit_chain: AuditChain
    staff: StaffAccounts
    staff_login: StaffLogin  # the 工作台's two-factor login (WeChat identity + SMS code)
    county_settings: CountySettings  # the 工作台's 县级参数
    opening: ArchiveOpening  # the 工作台's archive lookup and opening decision
    bulk_open: BulkOpen
    feedback: FeedbackService

    async def close(self) -> None:
        await self.callback.drain()  # replies still being worked on in the background
        await self.bulk_open.drain()  # a bulk opening still running
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
        sessions,
        keyring,
        settings.notify,
        clock,
        senders(settings, wechat, binding_added=binding_added_sender(settings, wechat, clock.now)),
        template_kinds=template_kinds(settings),
        quota_flag=QuotaFlag(redis.client if redis else None, f"{prefix}:notify:quota_until"),
    )
    queuer = Queuer(keyring, settings)
    # Residents' questions: asked by page or by message (the callback), answered from the 工作台.
    feedback = FeedbackService(
        settings,
        sessions,
        keyring,
        clock,
        wechat,
        identities=identities,
        outbox=outbox,
        limits=RateLimits(redis.client if redis else None, clock),
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
            sessions,
            keyring,
            settings.privacy,
            settings.ingest,
            today=clock.today,
            security=settings.security,
            queuer=queuer,
            notify=settings.notify,
            now=clock.now,
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
            feedback=feedback,
        ),
        metrics=metrics,
        sms=sms,
        consent=consent,
        binding=binding,
        bound=BoundArchives(sessions, keyring, settings.privacy, clock, reads=read_session_factory(engine)),
        records=RecordsService(sessions, keyring, settings.privacy, clock),
        outbox=outbox,
        queuer=queuer,
        due_scan=DueScanner(sessions, queuer, settings.notify, clock, keyring),
        notify_prefs=NotifyPrefs(sessions, keyring, settings, clock),
        audit_chain=AuditChain(sessions, keyring, settings.security, settings.data_dir, clock),
        staff=StaffAccounts(sessions, keyring, clock, settings.privacy),
        staff_login=StaffLogin(
            settings,
            sessions=sessions,
            keyring=keyring,
            clock=clock,
            redis=redis.client if redis else None,
            binding=binding,
            sms=sms,
            wechat=wechat,
            web_sessions=web_sessions,
            on_sms=metrics.count_sms,
        ),
        county_settings=CountySettings(sessions, keyring),
        opening=ArchiveOpening(sessions, keyring, clock, settings.privacy),
        bulk_open=BulkOpen(sessions, redis.client if redis else None, prefix, clock, settings.staff),
        feedback=feedback,
    )
