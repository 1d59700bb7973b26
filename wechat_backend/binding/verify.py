"""The code check and the binding itself: five tries, five minutes, single use; the caps counted
again under row locks; the archive's owners told through the outbox."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .. import audit
from ..archives import decide, not_open_message, open_fields, place_from, summary, with_place
from ..crypto import KeyRing
from ..db.models import Archive, BindAttempt, Binding, Identity, Notification
from ..errors import BadInput, Conflict, NotFound, NotOpen
from ..ids import new_public_id
from ..notify import Push
from ..notify.outbox import LEASE
from ..stats.tally import bound_moved
from .attempts import own_attempt
from .notice import KIND as NOTICE
from .person import IDENTITIES, PERSON_IDS, person_identity_ids
from .refusals import Refusal, finished, refuse, too_many_tries
from .rules import owner_relations
from .start import birth, caps_refusal, code_hash

if TYPE_CHECKING:
    from .service import BindingService, Caller

log = logging.getLogger("wechat_backend.binding")

ARCHIVES = Archive.__table__
ATTEMPTS = BindAttempt.__table__
BINDINGS = Binding.__table__

# Built once (see person.py). ``me``: the caller's identity id.
# Counting a try in one statement: concurrent guesses can never share a count (on PostgreSQL it
# also takes the row's lock; SQLite has one writer at a time anyway).
COUNT_TRY = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.public_id == bindparam("bind_id"),
        ATTEMPTS.c.identity_id == bindparam("me"),
        ATTEMPTS.c.status == "sent",
        ATTEMPTS.c.tries < bindparam("max_tries"),
    )
    .values(tries=ATTEMPTS.c.tries + 1)
    .returning(
        ATTEMPTS.c.id,
        ATTEMPTS.c.archive_id,
        ATTEMPTS.c.relation,
        ATTEMPTS.c.tries,
        ATTEMPTS.c.code_hash,
        ATTEMPTS.c.code_expires_at,
    )
)
# FOR NO KEY UPDATE: it serialises verifies all the same, but does not block the KEY SHARE locks
# that foreign-key checks take — two people binding each other's archives at once (each telling
# the other's identity in the outbox) would otherwise deadlock.
LOCK_ARCHIVE = with_place().where(ARCHIVES.c.id == bindparam("archive")).with_for_update(of=ARCHIVES, key_share=True)
LOCK_PERSON = (
    select(IDENTITIES.c.id)
    .where(IDENTITIES.c.id.in_(PERSON_IDS))
    .order_by(IDENTITIES.c.id)
    .with_for_update(key_share=True)
)
# Every binding on the archive or of the person: the caps, and the owners to tell.
AROUND = select(BINDINGS.c.identity_id, BINDINGS.c.archive_id, BINDINGS.c.relation).where(
    (BINDINGS.c.archive_id == bindparam("archive")) | BINDINGS.c.identity_id.in_(bindparam("mine", expanding=True))
)
INSERT_BINDING = insert(BINDINGS)
FINISH = (
    update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt")).values(status=bindparam("new_status"), code_hash=None)
)


async def verify(svc: BindingService, caller: Caller, bind_id: str, code: str) -> dict[str, Any]:
    code = (code or "").strip() if isinstance(code, str) else ""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        # Audited as every failed attempt is, but not counted as a try: it cannot be a guess,
        # and an elderly person's slip of the finger should not use up the code.
        async with svc._sessions.begin() as s:
            audit.by_identity(s, caller, "bind_verify", result="failed", reason="bad_input", detail={"field": "code"})
        raise BadInput("code", "请输入短信中的6位数字验证码")
    if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
        raise NotFound("未找到这次绑定，请重新开始")
    now = svc._clock.now()
    max_tries = svc._limits_cfg.code_max_tries
    async with svc._sessions() as s:
        counted = (
            await s.execute(COUNT_TRY, {"bind_id": bind_id, "me": caller.identity_id, "max_tries": max_tries})
        ).first()
        if counted is None:  # not the caller's, finished, or used up: say which
            attempt = await own_attempt(s, caller, bind_id, "bind_verify")
            used_up = attempt.status == "sent"
            refusal = ("used_up", too_many_tries()) if used_up else (attempt.status, finished(attempt.status))
            await refuse(s, caller, "bind_verify", attempt.archive_id, refusal)
        tries = counted.tries
        right = hmac.compare_digest(counted.code_hash or b"", code_hash(svc, bind_id, code))
        expired = counted.code_expires_at is None or counted.code_expires_at <= now
        if right and not expired:
            return await _bind(svc, s, caller, counted)
        locked = tries >= max_tries
        if locked or expired:
            await _finish_attempt(s, counted.id, "locked")
        reason = "expired" if expired else "locked" if locked else "wrong_code"
        audit.by_identity(s, caller, "bind_verify", counted.archive_id, result="failed", reason=reason)
        await s.commit()
    if expired:
        raise BadInput("code", "验证码已过期，请重新获取验证码")
    if locked:
        raise too_many_tries()
    raise BadInput("code", f"验证码不正确，还可以再输入{max_tries - tries}次")


async def _bind(svc: BindingService, s: AsyncSession, caller: Caller, attempt: Row[Any]) -> dict[str, Any]:
    # Row locks (PostgreSQL; SQLite has one writer anyway) so that two verifies at once cannot
    # both see room under the caps: the archive, then the person's identities, in id order.
    # The caps are counted after both locks are held, in a statement of their own.
    archive = (await s.execute(LOCK_ARCHIVE, {"archive": attempt.archive_id})).one()
    mine = sorted(set((await s.scalars(LOCK_PERSON, {"me": caller.identity_id})).all()) | {caller.identity_id})
    rows = (await s.execute(AROUND, {"archive": archive.id, "mine": mine})).all()
    fields = open_fields(svc._keys, archive)
    place = place_from(archive)
    today = svc._clock.today()
    decision = decide(archive, fields, place, today)
    refusal: Refusal | None = None
    if not decision.visible:  # closed meanwhile
        refusal = decision.reason, NotOpen(not_open_message(place), consult_phone=place.consult_phone)
    else:
        bound = frozenset(r.archive_id for r in rows if r.identity_id in mine)
        refusal = caps_refusal(svc, archive.id, bound, sum(r.archive_id == archive.id for r in rows))
    if refusal is not None:
        await _finish_attempt(s, attempt.id, "locked" if isinstance(refusal[1], NotOpen) else "sent")
        await refuse(s, caller, "bind", archive.id, refusal)
    binding_id = new_public_id()
    try:
        await s.execute(
            INSERT_BINDING,
            {
                "public_id": binding_id,
                "identity_id": caller.identity_id,
                "archive_id": archive.id,
                "relation": attempt.relation,
            },
        )
    except IntegrityError:
        raise Conflict("您已绑定这份档案") from None
    if not any(r.archive_id == archive.id for r in rows):  # its first binding: the statistics' bound moves
        await bound_moved(s, archive.id, 1)
    await _finish_attempt(s, attempt.id, "verified")
    audit.by_identity(s, caller, "bind", archive.id, detail={"relation": attempt.relation})
    owners = {r.identity_id for r in rows if r.archive_id == archive.id} - set(mine)
    relations = owner_relations(birth(fields), today)
    owners = {r.identity_id for r in rows if r.identity_id in owners and r.relation in relations}
    notes = await _tell_owners(svc, s, caller, archive, sorted(owners), attempt.relation) if owners else []
    out = summary(archive, fields, place, decision, today, svc._policy)
    out.update(binding_id=binding_id, relation=attempt.relation)
    await s.commit()
    for push in notes:
        await _push(svc, push)
    return out


async def _finish_attempt(s: AsyncSession, attempt_id: int, status: str) -> None:
    """``verified`` or ``locked`` drop the code's hash; ``sent`` leaves the attempt as it is."""
    if status != "sent":
        await s.execute(FINISH, {"attempt": attempt_id, "new_status": status})


# ---------------------------------------------------------------------- owners are told


async def _tell_owners(
    svc: BindingService, s: AsyncSession, caller: Caller, archive: Row[Any], owner_ids: list[int], relation: str
) -> list[Push]:
    """An outbox row for each owner of this archive (other than the caller): the person bound
    as oneself, or a young child's guardians (``rules.owner_relations``)."""
    # Pushes go through the official account: to the owner's own oa identity, or the one
    # linked to their mini-program identity by unionid — and only while they follow it.
    rows = []
    for owner_id in owner_ids:
        linked = await person_identity_ids(s, owner_id)
        oa = (
            await s.execute(
                select(Identity.id, Identity.openid).where(
                    Identity.id.in_(linked), Identity.channel == "oa", Identity.subscribed.is_(True)
                )
            )
        ).first()
        if oa is not None:
            rows.append((oa.id, oa.openid))
    now = svc._clock.now()
    payload = {"relation": relation}
    notes = []
    for owner_id, openid in rows:
        dedup = f"{NOTICE}:{archive.public_id}:{caller.identity_id}:{owner_id}:{int(now.timestamp())}"[:128]
        note = Notification(
            identity_id=owner_id,
            archive_id=archive.id,
            kind=NOTICE,
            dedup_key=dedup,
            status="pending",
            priority=0,  # a security alert: first in the queue, no quiet hours
            attempts=0,
            # Sent at once after the commit; the worker's turn comes if that never records.
            due_at=now + LEASE,
            sealed=svc._keys.seal(payload, f"notification:{dedup}"),
            key_id=svc._keys.active_key,
        )
        s.add(note)
        notes.append((note, openid))
    await s.flush()  # the rows' ids, for the pushes after the commit
    return [
        Push(
            id=note.id,
            kind=NOTICE,
            attempts=0,
            openid=openid,
            payload=payload,
            dedup_key=note.dedup_key,
            identity_id=note.identity_id,
            lease_until=note.due_at,  # the request's own claim, until the worker may take it
        )
        for note, openid in notes
    ]


async def _push(svc: BindingService, push: Push) -> None:
    if svc._outbox is None:
        return
    try:
        await svc._outbox.deliver(push)
    except Exception as exc:  # the row stays pending: the worker sends it
        log.warning("binding notice not recorded now (%s); left to the worker", type(exc).__name__)


async def archive_owner_relations(s: AsyncSession, keys: KeyRing, archive_id: int, today: dt.date) -> tuple[str, ...]:
    archive = await s.get(Archive, archive_id)
    return owner_relations(birth(open_fields(keys, archive)), today) if archive else ("self",)
