"""A caller's bind attempts after the start: finding one by its ``bind_id`` (anyone else's is simply
not found), where its code page stands, and a resend, which sends a new code through the same
allowances and SMS as a start (start.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import audit
from ..archives import decide, not_open_message, open_fields, place_of
from ..db.models import Archive, BindAttempt
from ..errors import AppError, NotFound, NotOpen
from .person import person_identity_ids
from .refusals import finished, refuse
from .rules import new_code
from .start import armed, phone_windows, send_code, start_windows, started, take

if TYPE_CHECKING:
    from .service import BindingService, Caller

ATTEMPTS = BindAttempt.__table__

# Built once (see person.py). ``me``: the caller's identity id.
ATTEMPT_STATE = select(ATTEMPTS.c.status, ATTEMPTS.c.code_expires_at, ATTEMPTS.c.tries).where(
    ATTEMPTS.c.public_id == bindparam("bind_id"), ATTEMPTS.c.identity_id == bindparam("me")
)

AttemptState = Literal["open", "expired", "done", "unknown"]


async def own_attempt(s: AsyncSession, caller: Caller, bind_id: str, action: str) -> BindAttempt:
    """The caller's own attempt; anyone else's ``bind_id`` is simply not found (and audited
    under ``action``)."""
    if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
        raise NotFound("未找到这次绑定，请重新开始")
    attempt = (
        await s.scalars(
            select(BindAttempt).where(BindAttempt.public_id == bind_id, BindAttempt.identity_id == caller.identity_id)
        )
    ).first()
    if attempt is None:
        audit.by_identity(s, caller, action, result="denied", reason="unknown_bind_id")
        await s.commit()
        raise NotFound("未找到这次绑定，请重新开始")
    return attempt


# ---------------------------------------------------------------------- resend


async def resend(svc: BindingService, caller: Caller, bind_id: str) -> dict[str, Any]:
    async with svc._sessions() as s:
        attempt = await own_attempt(s, caller, bind_id, "bind_resend")
        refusal: AppError | None = None
        if attempt.status not in _resendable(svc, attempt):
            refusal = finished(attempt.status)
        archive = await s.get(Archive, attempt.archive_id)
        assert archive is not None
        fields = open_fields(svc._keys, archive)
        if refusal is None:
            place = await place_of(s, archive)
            decision = decide(archive, fields, place, svc._clock.today())
            if not decision.visible:  # closed since the code was asked for
                refusal = NotOpen(not_open_message(place), consult_phone=place.consult_phone)
                attempt.status, attempt.code_hash = "locked", None
        if refusal is not None:
            reason = refusal.code if not isinstance(refusal, NotOpen) else decision.reason
            audit.by_identity(s, caller, "bind_resend", archive.id, result="denied", reason=reason)
            await s.commit()
            raise refusal
        # A resend sends a code as a start does: it counts against the person's and the
        # address's allowances too, or resends would multiply them (30 starts × 10 codes).
        # All windows in one call, so a resend refused (say, within the phone's minute) costs
        # no allowance: pressing 重新发送 too early must not use up a day's binds.
        person = (await person_identity_ids(s, caller.identity_id))[0]
        phone = fields.get(attempt.target) or ""
        starts = start_windows(svc, caller, person)
        limited = await take(svc, [*starts, *phone_windows(svc, phone)], "bind resend")
        if limited is not None:
            full = getattr(limited[1], "window", None)
            await refuse(s, caller, "bind_resend" if full in starts else "bind_code", archive.id, limited)
        code = new_code()
        row = await s.get(BindAttempt, attempt.id, with_for_update=True, populate_existing=True)
        if row is None or row.status not in _resendable(svc, row):
            raise finished(row.status if row else "replaced")
        for key, value in armed(svc, bind_id, code).items():
            setattr(row, key, value)
        row.sends = (row.sends or 0) + 1
        audit.by_identity(s, caller, "bind_resend", attempt.archive_id)
        await s.commit()
    await send_code(svc, caller, bind_id, attempt.archive_id, phone, fields.get("name"), code)
    return started(svc, bind_id, phone)


def _resendable(svc: BindingService, attempt: BindAttempt) -> tuple[str, ...]:
    """``sent`` and ``failed``; also ``sending`` once it is clearly stuck (the outcome was never
    recorded, e.g. the database failed after the provider took the message)."""
    stuck_after = dt.timedelta(seconds=2 * svc._settings.sms.timeout_seconds + 30)
    sent_at = attempt.last_sent_at
    if sent_at is not None and svc._clock.now() - sent_at > stuck_after:
        return ("sent", "failed", "sending")
    return ("sent", "failed")


# ---------------------------------------------------------------------- the code page's link


async def attempt_state(svc: BindingService, caller: Caller, bind_id: str, action: str) -> AttemptState:
    """Where the caller's bind link stands: ``open`` (the code page applies: a code out and
    still good, or one that a resend can replace), ``expired`` (the code ran out of time or
    tries, or a newer code replaced it), ``done`` (verified: the archive is bound) or
    ``unknown`` (no such attempt, or someone else's — the same answer, audited under ``action``)."""
    if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
        return "unknown"
    async with svc._sessions() as s:
        row = (await s.execute(ATTEMPT_STATE, {"bind_id": bind_id, "me": caller.identity_id})).first()
        if row is None:
            audit.by_identity(s, caller, action, result="denied", reason="unknown_bind_id")
            await s.commit()
            return "unknown"
    if row.status in ("sending", "failed"):
        return "open"
    if row.status == "sent":
        live = row.code_expires_at is not None and row.code_expires_at > svc._clock.now()
        return "open" if live and row.tries < svc._limits_cfg.code_max_tries else "expired"
    return "done" if row.status == "verified" else "expired"  # locked, replaced
