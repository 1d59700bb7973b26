"""The phone's half of the 工作台's desktop QR login: a scan only announces the login, the member
confirms it on the phone.

If the scan itself logged the desktop in, anyone could open the login page in their own browser and
show (or send) its QR code to a staff member — "扫码看海报" — and get the member's session, with its
health archives (QR-login phishing). So the scan (:func:`announce_scan`, from the callback) only
marks the attempt scanned by that member (:meth:`.QrLogins.scan`) and answers with a text that says
when and from where someone asked — the time the page was opened, half its address, never more —
and links to ``/staff/login/confirm?t=<token>``. That page, opened in WeChat, knows the member by
the official-account login; it shows the desktop (:mod:`.qr_device`) and 确认登录 / 取消, and only
the identity that scanned may answer, once, within the attempt's five minutes
(:class:`QrConfirm`). 确认 lets the desktop's poll go on (:meth:`.StaffLogin.poll_qr`); 取消 ends
the attempt and the desktop page says the login was refused. Every answer and every refusal is
audited as ``staff_login_confirm``. The token in the link is the QR code's, public already: the
link is worth nothing to anyone but the member who scanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..clock import Clock
from ..config import Settings
from ..db.models import Staff
from ..errors import AppError, BadInput, Conflict, Forbidden, Unavailable
from .qr_device import Desktop
from .qr_login import Answer, Pending, QrLogins, token_of

CONFIRM_PATH = "/staff/login/confirm"
Outcome = Literal["ok", "expired", "other_identity", "used_up", "not_staff"]

# What the person who scanned reads in WeChat. The link is an <a> (WeChat shows it as a link): a
# bare address would run into the full-width "；" in some linkifiers.
ANNOUNCE = (
    "有人请求在电脑上登录工作台（{opened}，IP {ip}）。"
    '如果是您本人正在操作，请点此确认：<a href="{link}">确认登录</a>；如果不是，请忽略本消息，不要点击。'
)
NOT_STAFF = (
    "您的微信未绑定在用的工作人员账号，不能用它登录工作台。"
    "工作人员请先在手机微信中点公众号菜单“工作台”，用登记的手机号验证一次。"
)
EXPIRED = "这个登录二维码已过期或已使用，请在电脑上刷新登录页，再扫描新的二维码。"
NOT_NOW = "暂时无法确认登录，请稍后在电脑上刷新登录页重试。"

# What the confirm page says when it refuses.
GONE = "这个登录请求已过期或已处理，未登录。如需登录，请在电脑上刷新登录页，重新扫码。"
OTHER_IDENTITY = "这个登录请求不是用您的微信扫码发起的，您不能确认。如果有人把这个链接发给您，请不要理会。"
USED_UP = "这个登录请求已经确认或取消过了，不能再操作。如需登录，请在电脑上刷新登录页，重新扫码。"
NO_ANSWER = "请点“确认登录”或“取消”"


class LoginGone(AppError):
    code, status, message = "expired", 410, GONE


def refusal(outcome: str) -> AppError:
    """The page's refusal: someone else's attempt (403), answered already (409), else gone (410)."""
    if outcome == "other_identity":
        return Forbidden(OTHER_IDENTITY)
    if outcome == "used_up":
        return Conflict(USED_UP)
    return LoginGone()


class Who(Protocol):
    """Who answers (the login's ``Asker``): the WeChat identity, and for the audit the request."""

    @property
    def identity_id(self) -> int | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def client_ip(self) -> str | None: ...


@dataclass(frozen=True)
class ConfirmView:
    """What the confirm page shows: the desktop that asked; the token goes back in the form."""

    token: str
    desktop: Desktop


def confirm_link(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}{CONFIRM_PATH}?t={token}"


def announcement(desktop: Desktop, link: str) -> str:
    return ANNOUNCE.format(opened=desktop.opened_text, ip=desktop.ip, link=link)


def confirm_outcome(pending: Pending | None, identity_id: int) -> Outcome:
    """Whether ``identity_id`` may answer this attempt (the order of ``_DECIDE`` in qr_login):
    gone or expired; not scanned by this identity (a waiting attempt included); answered already."""
    if pending is None:
        return "expired"
    if pending.identity_id != identity_id:
        return "other_identity"
    return "ok" if pending.state == "scanned" else "used_up"


async def announce_scan(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis | None,
    settings: Settings,
    clock: Clock,
    identity_id: int,
    scene: str,
) -> str:
    """A scan of a login QR code (from the callback): announced when the identity is linked to an
    active staff member. Returns the text the scanner reads in WeChat. Never an institution's follow."""
    async with sessions() as s:
        staff_id = await s.scalar(select(Staff.id).where(Staff.identity_id == identity_id, Staff.active))
    if staff_id is None:
        return NOT_STAFF
    token = token_of(scene)
    try:
        desktop = await QrLogins(redis, settings.redis.key_prefix, clock).scan(token, staff_id, identity_id)
    except Unavailable:
        return NOT_NOW
    if desktop is None:
        return EXPIRED
    return announcement(desktop, confirm_link(settings.server.public_base_url, token))


class QrConfirm:
    """The confirm page's checks and the member's answer."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], attempts: QrLogins) -> None:
        self._sessions = sessions
        self._attempts = attempts

    async def view(self, who: Who, token: str) -> ConfirmView:
        """The attempt the asker scanned, to confirm or cancel; any other case is refused (audited)."""
        pending = await self._check(who, token, "view")
        return ConfirmView(token, pending.desktop)

    async def answer(self, who: Who, token: str, decision: str) -> bool:
        """``confirm`` or ``cancel``, once, by the identity that scanned; True when confirmed."""
        if decision not in ("confirm", "cancel"):
            raise BadInput("decision", NO_ANSWER)
        await self._check(who, token, decision)
        answer: Answer = "confirmed" if decision == "confirm" else "refused"
        done = await self._attempts.decide(token, who.identity_id or 0, answer)
        if done != "ok":  # answered (or expired) between the check and now
            await self._refuse(who, done, decision)
        await self._audit(who, "ok", None, decision)
        return decision == "confirm"

    async def _check(self, who: Who, token: str, decision: str) -> Pending:
        pending = await self._attempts.peek(token)
        outcome = confirm_outcome(pending, who.identity_id or 0)
        if outcome == "ok" and pending is not None:
            async with self._sessions() as s:  # disabled or unlinked since the scan: nothing to confirm
                row = await s.get(Staff, pending.staff_id)
            if row is None or not row.active or row.identity_id != pending.identity_id:
                outcome = "not_staff"
        if outcome != "ok" or pending is None:
            await self._refuse(who, outcome, decision)
        assert pending is not None
        return pending

    async def _refuse(self, who: Who, outcome: str, decision: str) -> None:
        await self._audit(who, "denied", outcome, decision)
        raise refusal(outcome)

    async def _audit(self, who: Who, result: str, reason: str | None, decision: str) -> None:
        """The asker as the actor: the active member linked to their identity, else the identity."""
        async with self._sessions.begin() as s:
            member = await s.scalar(select(Staff).where(Staff.identity_id == who.identity_id, Staff.active))
            actor = ("staff", f"staff:{member.public_id}") if member else ("identity", str(who.identity_id))
            audit.record(
                s,
                actor_type=actor[0],
                actor_id=actor[1],
                action="staff_login_confirm",
                result=result,
                reason=reason,
                request_id=who.request_id,
                client_ip=who.client_ip,
                detail={"decision": decision},
            )
