"""The 工作台 login. Every staff session needs both factors: the member's linked WeChat identity, and
an SMS code to the member's registered phone verified at most 12 hours ago
(:func:`~.scope.sms_factor_fresh`; ``StaffAccounts.load`` checks it again on every request).

**In WeChat** (工作台 menu → ``/staff/login``): the official-account login (OAuth) gives a resident
session naming the WeChat identity. An identity linked to an active member whose SMS factor is fresh
is logged in at once (:meth:`StaffLogin.in_wechat`). Otherwise a code goes to the member's phone —
for a linked identity, to the phone on file; the first time, to the phone the member types
(:meth:`~StaffLogin.send_code`) — and once it is verified (:meth:`~StaffLogin.verify`) the identity
is linked (once: :func:`link_outcome`), tagged for the staff menu, and the session opens.

**On a desktop**, where WeChat's web login does not work: the page shows a temporary QR code
(:mod:`.qr_login`, recording the desktop's time, half address and browser family,
:mod:`.qr_device`); the linked member scans it and gets a message with a link; on that page, in
WeChat, the member confirms (:meth:`~StaffLogin.confirm_page`, :meth:`~StaffLogin.answer`,
:mod:`.qr_confirm`) — the scan alone logs nobody in, so a QR code shown to a member by someone else
gets that someone nothing. Then the page's poll (:meth:`~StaffLogin.poll_qr`) logs this browser in —
at once when the factor is fresh, else after a code sent to the member's phone; a cancel on the
phone makes the poll say the login was refused.

Codes follow the binding flow's rules and limits (:mod:`.login_codes`; the per-phone windows and
SMS budget of ``binding/start.py``, shared with binding, so one phone gets no more texts for being
staff too). The phone form answers an unknown phone and a disabled member's phone with the same
words, after the same limits, so it cannot be used to find out whose phone is staff; the audit
keeps the precise reason (sealed). Nothing here logs a phone, name or code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..binding import BindingService
from ..binding.start import phone_windows, take
from ..client_ip import rate_subject
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Identity, Staff
from ..errors import AppError, BadInput, Conflict, Forbidden, Unavailable
from ..privacy import mask_phone
from ..rate_limits import Window
from ..sms import SmsResult, SmsSender, StaffCodeSms
from ..validators import InvalidValue, parse_mobile
from ..web_sessions import SessionStore
from ..wechat.api import WeChatApi, WeChatError
from ..wechat.oauth import safe_next
from .accounts import staff_aad
from .login_codes import Challenge, LoginCodes, Via
from .qr_confirm import ConfirmView, QrConfirm
from .qr_device import Desktop, browser_family, partial_ip
from .qr_login import QR_SECONDS, QrLogins, login_scene, qr_image
from .scope import sms_factor_fresh

log = logging.getLogger("wechat_backend.staff.login")

HOME = "/staff/"
TAG_SECONDS = 3.0  # the staff menu's tag is best effort: the login does not wait longer for it
QR_PAGES_PER_IP_HOUR = 60  # each login page on a desktop creates a QR code at WeChat

# What the person is told.
NOT_STAFF = "该手机号不是在用的工作人员账号。如需开通或恢复工作台账号，请联系县级管理员。"
LINKED_ELSEWHERE = "该工作人员账号已绑定另一个微信。如需改用这个微信登录，请联系县级管理员处理。"
IDENTITY_LINKED = "您的微信已绑定另一个工作人员账号（一个微信只能绑定一个账号）。如有疑问，请联系县级管理员。"
IN_WECHAT_ONLY = "请在微信中从公众号菜单“工作台”进入登录"
SMS_FAILED = "短信发送失败，请稍后再试。如一直收不到，请联系县级管理员核对登记的手机号。"
QR_UNAVAILABLE = "暂时无法生成登录二维码，请稍后刷新页面；也可在手机微信中从公众号菜单“工作台”登录。"
QR_REFUSED = "手机上已取消这次登录。如需登录，请刷新二维码后重新扫码，并在手机上点“确认登录”。"
CODE_GONE = "验证码已失效，请重新获取验证码"
CODE_MESSAGES = {
    "expired": CODE_GONE,
    "locked": "验证码错误次数过多，已失效，请重新获取验证码",
}

LinkOutcome = Literal["keep", "link", "disabled", "linked_elsewhere", "identity_linked"]


@dataclass(frozen=True)
class Asker:
    """Who asks: the WeChat identity of the resident session (None on a desktop), and for the
    audit and the limits the request id and client address."""

    identity_id: int | None
    request_id: str | None = None
    client_ip: str | None = None


@dataclass(frozen=True)
class LoggedIn:
    """A staff session opened: its id goes into the staff cookie only."""

    session_id: str
    next_path: str


@dataclass(frozen=True)
class CodeSent:
    """A code on its way: the challenge id goes into this browser's cookie only."""

    challenge_id: str
    phone: str  # masked
    next_path: str


@dataclass(frozen=True)
class QrPage:
    token: str  # the QR code's scene: public
    secret: str  # this browser's cookie: what makes the token worth anything
    image: str  # the QR code, an SVG data: URI
    expires_in: int


@dataclass(frozen=True)
class QrPoll:
    """``waiting``; ``scanned`` (not confirmed on the phone yet); ``done`` (``login``); ``code``
    (``sent``: a code went to the member's phone); ``refused`` (cancelled on the phone, ``message``);
    ``expired``; ``error`` (``message``)."""

    state: str
    login: LoggedIn | None = None
    sent: CodeSent | None = None
    message: str = ""


def staff_next(path: str | None) -> str:
    """A local ``/staff/…`` page to go to after the login (never the login itself); else the home."""
    path = safe_next(path)
    return path if path.startswith(HOME) and not path.startswith("/staff/login") else HOME


def link_outcome(
    *, active: bool, linked_to: int | None, identity_id: int, holder_active: bool | None, via: Via
) -> LinkOutcome:
    """What a verified code does with the WeChat identity: ``keep`` (already linked to it), ``link``
    (the first time, from WeChat), or why not. An identity is linked once: a member linked to
    another identity, or an identity linked to another active member, is refused — the county
    admin sorts it out. ``holder_active``: whether another member holds this identity (None: no
    one); a disabled member's link is given up, so a member re-added after a disable can link again.
    A QR login never links: the scan was by the linked identity."""
    if not active:
        return "disabled"
    if linked_to == identity_id:
        return "keep"
    if linked_to is not None or via == "qr":
        return "linked_elsewhere"
    return "identity_linked" if holder_active else "link"


class StaffLogin:
    def __init__(
        self,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        clock: Clock,
        redis: aioredis.Redis | None,
        binding: BindingService,
        sms: SmsSender,
        wechat: WeChatApi,
        web_sessions: SessionStore | None,
        on_sms: Callable[[str, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._limits = settings.limits
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        prefix = settings.redis.key_prefix
        self._codes = LoginCodes(redis, keyring, settings.limits, clock, key_prefix=prefix)
        self._qr = QrLogins(redis, prefix, clock)
        self._confirm = QrConfirm(sessions, self._qr)
        self._binding = binding  # its per-phone windows and SMS budget (binding/start.py)
        self._sms = sms
        self._wechat = wechat
        self._web_sessions = web_sessions
        self._on_sms = on_sms

    # ------------------------------------------------------------------ in WeChat

    async def in_wechat(self, who: Asker, next_path: str) -> LoggedIn | str | None:
        """The login page in WeChat: logged in at once when the identity is linked to an active
        member whose SMS factor is fresh; else the member's masked phone, where a code will go
        (linked), or None (not linked: the phone form)."""
        async with self._sessions() as s:
            row = await self._linked(s, who)
        if row is None:
            return None
        if sms_factor_fresh(row.sms_verified_at, self._clock.now()):
            return await self._open(row, who, via="wechat", factor="fresh", next_path=next_path)
        return mask_phone(self._phone(row), self._settings.privacy)

    async def linked_phone(self, who: Asker) -> str | None:
        """The masked phone of the active member linked to the asker's identity, or None."""
        async with self._sessions() as s:
            row = await self._linked(s, who)
        return mask_phone(self._phone(row), self._settings.privacy) if row is not None else None

    async def send_code(self, who: Asker, typed_phone: str, next_path: str) -> CodeSent:
        """A code for the WeChat login: to the linked member's phone, or to the typed phone when it
        is an active member's (the same refusal otherwise, whatever the reason)."""
        # (Reads in sessions of their own, closed before the audit writes: SQLite has one writer.)
        async with self._sessions() as s:
            row = await self._linked(s, who)
        if row is not None:
            phone = self._phone(row)
        else:
            try:
                phone = parse_mobile(typed_phone)
            except InvalidValue as exc:
                raise BadInput("phone", exc.message) from None
        # The limits come before the lookup: a staff phone and any other phone cost the same.
        await self._take([*self._asker_windows(who), *phone_windows(self._binding, phone)], who, "staff_code")
        if row is None:
            async with self._sessions() as s:
                row, reason = await self._by_phone(s, phone)
            if row is None:
                await self._audit(who, None, "staff_code", result="denied", reason=reason)
                raise BadInput("phone", NOT_STAFF)
        assert who.identity_id is not None
        return await self._send(who, row, phone, Challenge(row.id, who.identity_id, "wechat", next_path, ""))

    async def pending(self, challenge_id: str | None) -> Challenge | None:
        """The code this browser is waiting for (the code page), or None."""
        return await self._codes.peek(challenge_id)

    async def resend(self, who: Asker, challenge_id: str | None) -> CodeSent:
        """A new code for the same login; the earlier one stops working."""
        challenge = await self._codes.peek(challenge_id)
        if challenge is None:
            raise BadInput("code", CODE_GONE)
        async with self._sessions() as s:
            row = await s.get(Staff, challenge.staff_id)
        if row is None or not row.active:
            await self._codes.drop(challenge_id)
            raise BadInput("code", CODE_GONE)
        phone = self._phone(row)
        await self._take([*self._asker_windows(who), *phone_windows(self._binding, phone)], who, "staff_code", row)
        return await self._send(who, row, phone, challenge, replaces=challenge_id)

    async def verify(self, who: Asker, challenge_id: str | None, code: str) -> LoggedIn:
        """Check the code (tries, expiry, single use), link the identity when it is the first time,
        mark the SMS factor fresh, tag the identity for the staff menu, open the session."""
        code = code.strip() if isinstance(code, str) else ""
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise BadInput("code", "请输入短信中的6位数字验证码")  # a slip of the finger is not a try
        checked = await self._codes.check(challenge_id, code)
        if checked.challenge is None:
            await self._audit(who, None, "staff_verify", result="failed", reason=checked.outcome)
            if checked.outcome == "wrong_code":
                raise BadInput("code", f"验证码不正确，还可以再输入{checked.tries_left}次")
            raise BadInput("code", CODE_MESSAGES[checked.outcome])
        c = checked.challenge
        try:
            row, openid, outcome = await self._link(who, c)
        except IntegrityError:  # the same identity linked to another member at this very moment
            row, openid, outcome = None, "", "identity_linked"
        if row is None:
            await self._audit(who, None, "staff_link", result="denied", reason=outcome, staff_id=c.staff_id)
            raise _link_refusal(outcome)
        await self._tag(openid)
        return LoggedIn(await self._open_session(row.id), staff_next(c.next_path))

    # ------------------------------------------------------------------ on a desktop

    async def start_qr(self, who: Asker, next_path: str, user_agent: str = "") -> QrPage:
        """A new QR attempt for this browser and its temporary QR code at WeChat. What the member's
        phone will show of this desktop is kept with it: half its address, its browser family."""
        await self._take([self._window("qr_ip", rate_subject(who.client_ip or "-"), 3600, QR_PAGES_PER_IP_HOUR)])
        browser = await asyncio.to_thread(browser_family, user_agent)  # the rules' first load is slow
        desktop = Desktop(self._clock.time(), partial_ip(who.client_ip), browser)
        attempt = await self._qr.create(next_path, desktop)
        try:
            ticket = await self._wechat.create_qrcode(login_scene(attempt.token), expire_seconds=QR_SECONDS)
        except WeChatError as exc:
            log.warning("staff QR login: the QR code could not be created (%s)", type(exc).__name__)
            raise Unavailable(QR_UNAVAILABLE) from None
        return QrPage(attempt.token, attempt.secret, qr_image(ticket.url), QR_SECONDS)

    async def poll_qr(self, who: Asker, token: str, secret: str) -> QrPoll:
        """Where this browser's QR attempt stands; an attempt the member confirmed is claimed here."""
        got = await self._qr.claim(token, secret)
        if got == "refused":
            return QrPoll("refused", message=QR_REFUSED)
        if isinstance(got, str):
            return QrPoll(got if got in ("waiting", "scanned") else "expired")
        async with self._sessions() as s:
            row = await s.get(Staff, got.staff_id)
        if row is None or not row.active or row.identity_id != got.identity_id:
            return QrPoll("expired")  # disabled or unlinked since the scan
        who = Asker(got.identity_id, who.request_id, who.client_ip)
        if sms_factor_fresh(row.sms_verified_at, self._clock.now()):
            return QrPoll("done", login=await self._open(row, who, via="qr", factor="fresh", next_path=got.next_path))
        phone = self._phone(row)
        try:
            await self._take([*self._asker_windows(who), *phone_windows(self._binding, phone)], who, "staff_code", row)
            sent = await self._send(who, row, phone, Challenge(row.id, got.identity_id, "qr", got.next_path, ""))
        except AppError as exc:
            return QrPoll("error", message=exc.message)
        return QrPoll("code", sent=sent)

    async def confirm_page(self, who: Asker, token: str) -> ConfirmView:
        """In WeChat, from the scan's message: the desktop login the asker scanned (else refused)."""
        return await self._confirm.view(who, token)

    async def answer(self, who: Asker, token: str, decision: str) -> bool:
        """The asker's ``confirm`` or ``cancel`` of the desktop login they scanned; True: confirmed."""
        return await self._confirm.answer(who, token, decision)

    # ------------------------------------------------------------------ the session

    async def end(self, session_id: str | None) -> None:
        """Log out: the staff session ends on the server."""
        if session_id and self._web_sessions is not None:
            await self._web_sessions.close(session_id)

    async def drop_code(self, challenge_id: str | None) -> None:
        await self._codes.drop(challenge_id)

    # ------------------------------------------------------------------ parts

    async def _linked(self, s: AsyncSession, who: Asker) -> Staff | None:
        """The active member linked to the asker's WeChat identity (an official-account one)."""
        identity = await s.get(Identity, who.identity_id) if who.identity_id is not None else None
        if identity is None or identity.channel != "oa":
            raise Forbidden(IN_WECHAT_ONLY)
        return await s.scalar(select(Staff).where(Staff.identity_id == identity.id, Staff.active))

    async def _by_phone(self, s: AsyncSession, phone: str) -> tuple[Staff | None, str]:
        """The active member with this phone; else why not (``disabled`` or ``unknown_phone``)."""
        bidx = self._keys.blind_index("phone", phone)
        rows = (await s.scalars(select(Staff).where(Staff.phone_bidx == bidx).order_by(Staff.id))).all()
        mine = [r for r in rows if self._phone(r) == phone]  # the index narrows; the sealed phone decides
        active = next((r for r in mine if r.active), None)
        return active, "" if active else ("disabled" if mine else "unknown_phone")

    def _phone(self, row: Staff) -> str:
        return str(self._keys.open(row.sealed, staff_aad(row.public_id)).get("phone", ""))

    async def _link(self, who: Asker, c: Challenge) -> tuple[Staff | None, str, LinkOutcome]:
        """In one transaction: the member (locked), the link, the fresh SMS factor, the audit."""
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await s.get(Staff, c.staff_id, with_for_update=True)
            holder = None
            if row is not None and row.identity_id is None:
                holder = await s.scalar(select(Staff).where(Staff.identity_id == c.identity_id).with_for_update())
            outcome = link_outcome(
                active=row is not None and row.active,
                linked_to=row.identity_id if row else None,
                identity_id=c.identity_id,
                holder_active=holder.active if holder is not None else None,
                via=c.via,
            )
            if row is None or outcome not in ("keep", "link"):
                return None, "", outcome
            actor = f"staff:{row.public_id}"
            if outcome == "link":
                if holder is not None:  # a disabled member's link: given up
                    holder.identity_id = None
                    await s.flush()
                    detail = {"staff": holder.public_id}
                    audit.record(s, actor_type="staff", actor_id=actor, action="staff_unlink", detail=detail)
                row.identity_id, row.linked_at = c.identity_id, now
                audit.record(s, **self._who(who, actor), action="staff_link", detail={"identity": c.identity_id})
            row.sms_verified_at = now
            audit.record(s, **self._who(who, actor), action="staff_login", detail={"via": c.via, "factor": "sms"})
            await s.flush()
            identity = await s.get(Identity, c.identity_id)
            return row, identity.openid if identity else "", outcome

    async def _send(
        self, who: Asker, row: Staff, phone: str, challenge: Challenge, *, replaces: str | None = None
    ) -> CodeSent:
        """Issue the challenge, hand its code to the provider (no transaction open), audit the outcome."""
        masked = mask_phone(phone, self._settings.privacy)
        c = Challenge(challenge.staff_id, challenge.identity_id, challenge.via, challenge.next_path, masked)
        challenge_id, code = await self._codes.issue(c, replaces=replaces)
        minutes = max(1, self._limits.code_ttl_seconds // 60)
        try:
            result = await self._sms.send(phone, StaffCodeSms(code, minutes))
        except Exception as exc:  # a provider bug must not end the request without an answer
            log.error("sms provider %s raised %s", self._sms.provider, type(exc).__name__)
            result = SmsResult.of("error")
        if self._on_sms is not None:
            self._on_sms(self._sms.provider, result.outcome)
        detail = {"via": c.via, "provider": self._sms.provider, "provider_code": result.provider_code or None}
        await self._audit(
            who,
            row,
            "staff_code",
            result="ok" if result.ok else "failed",
            reason=None if result.ok else result.outcome,
            detail=detail,
        )
        if not result.ok:
            await self._codes.drop(challenge_id)
            raise Unavailable(SMS_FAILED)
        return CodeSent(challenge_id, masked, c.next_path)

    async def _open(self, row: Staff, who: Asker, *, via: str, factor: str, next_path: str) -> LoggedIn:
        session_id = await self._open_session(row.id)
        await self._audit(who, row, "staff_login", detail={"via": via, "factor": factor})
        return LoggedIn(session_id, staff_next(next_path))

    async def _open_session(self, staff_id: int) -> str:
        if self._web_sessions is None:
            raise Unavailable()
        return await self._web_sessions.open(staff_id, "staff")

    async def _tag(self, openid: str) -> None:
        """Tag the identity for the staff menu (``[menu] staff_tag``). Best effort: a failure is
        logged and the login goes on (the next SMS login tags again)."""
        if not openid:
            return
        name = self._settings.menu.staff_tag
        try:
            async with asyncio.timeout(TAG_SECONDS):
                tags = {t.get("name"): t.get("id") for t in await self._wechat.get_tags()}
                tag_id = tags.get(name)
                if tag_id is None:
                    tag_id = await self._wechat.create_tag(name)
                await self._wechat.tag_users(int(tag_id), [openid])
        except Exception as exc:  # the platform, the network, a malformed answer: none stops the login
            log.warning("staff login: tagging for the staff menu failed (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ limits and audit

    def _window(self, kind: str, subject: str, seconds: int, limit: int) -> Window:
        """No identity or address in clear in Redis: the subject is a keyed hash."""
        digest = self._keys.mac("rate_limit", subject).hex()[:32]
        return Window(f"{self._settings.redis.key_prefix}:rl:staff_{kind}:{digest}", seconds, limit)

    def _asker_windows(self, who: Asker) -> list[Window]:
        """The asking address's and identity's allowances (the binding's sizes, counted apart)."""
        cfg = self._limits
        out = [self._window("ip", rate_subject(who.client_ip or "-"), 3600, cfg.bind_starts_per_ip_hour)]
        if who.identity_id is not None:
            out.append(self._window("identity", str(who.identity_id), 86400, cfg.bind_starts_per_identity_day))
        return out

    async def _take(
        self, windows: list[Window], who: Asker | None = None, action: str = "", row: Staff | None = None
    ) -> None:
        """Count the event in every window, or audit (when ``action``) and raise the limit's error."""
        refusal = await take(self._binding, windows, action or "staff login")
        if refusal is None:
            return
        if who is not None and action:
            await self._audit(who, row, action, result="denied", reason=refusal[0])
        raise refusal[1]

    def _who(self, who: Asker, actor: str | None) -> dict[str, Any]:
        """The audit's actor: the member when known, else the asking identity (or the login itself)."""
        if actor is not None:
            actor_type, actor_id = "staff", actor
        elif who.identity_id is not None:
            actor_type, actor_id = "identity", str(who.identity_id)
        else:
            actor_type, actor_id = "system", "staff_login"
        return {
            "actor_type": actor_type,
            "actor_id": actor_id,
            "request_id": who.request_id,
            "client_ip": who.client_ip,
        }

    async def _audit(
        self,
        who: Asker,
        row: Staff | None,
        action: str,
        *,
        result: str = "ok",
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        staff_id: int | None = None,
    ) -> None:
        async with self._sessions.begin() as s:
            if row is None and staff_id is not None:
                row = await s.get(Staff, staff_id)
            actor = f"staff:{row.public_id}" if row is not None else None
            audit.record(s, **self._who(who, actor), action=action, result=result, reason=reason, detail=detail)


def _link_refusal(outcome: str) -> AppError:
    if outcome == "linked_elsewhere":
        return Conflict(LINKED_ELSEWHERE)
    if outcome == "identity_linked":
        return Conflict(IDENTITY_LINKED)
    return BadInput("code", NOT_STAFF)  # disabled since the code was sent
