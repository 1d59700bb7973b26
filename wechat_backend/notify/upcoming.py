"""What the 随访提醒 menu item answers: a follower's next due dates, read from ``due_items``.

Only archives the person (every identity linked by unionid) has bound and may see today, and only
what a reminder would be sent for (``schedule.applies``). An item says who, which kind and when —
never a diagnosis or a value. The text is written by ``wechat.replies.upcoming``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..archives import decide, open_fields, place_from, with_place
from ..binding.person import person_identity_ids
from ..config import PrivacySettings
from ..crypto import KeyRing
from ..db.models import Archive, Binding, DueItem, Identity
from ..privacy import mask_name
from . import schedule
from .kinds import DUE_KINDS

ARCHIVES, BINDINGS, IDENTITIES, ITEMS = (m.__table__ for m in (Archive, Binding, Identity, DueItem))
SHOWN = 5  # lines in one answer: the soonest first

FOLLOWER = select(IDENTITIES.c.id).where(IDENTITIES.c.channel == "oa", IDENTITIES.c.openid == bindparam("openid"))
BOUND = (
    with_place(BINDINGS.c.relation)
    .join(BINDINGS, BINDINGS.c.archive_id == ARCHIVES.c.id)
    .where(BINDINGS.c.identity_id.in_(bindparam("ids", expanding=True)))
    .order_by(BINDINGS.c.created_at, BINDINGS.c.id)
)
DUE = (
    select(ITEMS.c.archive_id, ITEMS.c.kind, ITEMS.c.due_on)
    .where(
        ITEMS.c.archive_id.in_(bindparam("archives", expanding=True)),
        ITEMS.c.kind.in_(DUE_KINDS),
        ITEMS.c.due_on >= bindparam("today"),
    )
    .order_by(ITEMS.c.due_on, ITEMS.c.archive_id, ITEMS.c.kind)
)


@dataclass(frozen=True)
class DueLine:
    """One coming date: for the person themself (``own``) or a family member (``name`` masked)."""

    own: bool
    name: str
    kind: str
    due_on: dt.date


async def upcoming_for(
    s: AsyncSession, keys: KeyRing, policy: PrivacySettings, openid: str, today: dt.date, *, limit: int = SHOWN
) -> list[DueLine] | None:
    """The follower's next due dates, soonest first; None when they have bound no archive."""
    me = await s.scalar(FOLLOWER, {"openid": openid})
    if me is None:
        return None
    rows = (await s.execute(BOUND, {"ids": await person_identity_ids(s, me)})).all()
    if not rows:
        return None
    own = {r.id for r in rows if r.relation == "self"}  # bound as "self" by any of the person's identities
    visible: dict[int, tuple[str, dt.date]] = {}  # archive id -> (masked name, birth date)
    for row in {r.id: r for r in rows}.values():  # one row per archive
        fields = open_fields(keys, row)
        if decide(row, fields, place_from(row), today).visible:
            visible[row.id] = (mask_name(fields.get("name"), policy), dt.date.fromisoformat(fields["birth_date"]))
    if not visible:
        return []
    out: list[DueLine] = []
    for item in (await s.execute(DUE, {"archives": sorted(visible), "today": today})).all():
        name, birth = visible[item.archive_id]
        if schedule.applies(item.kind, birth, item.due_on):
            out.append(DueLine(item.archive_id in own, name, item.kind, item.due_on))
        if len(out) >= limit:
            break
    return out
