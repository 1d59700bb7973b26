"""The data part of migration 0005: a record not labelled N keeps its dates sealed only.

Before 0005 every record had ``date`` and ``next_due_date`` in clear, and its sealed part had no
dates. For each record whose label is not N, the dates go into the sealed part (re-sealed under the
active key) and the clear columns are emptied. Records labelled N are left as they are. Run by
``wechat-backend db upgrade`` until it has finished once with every record readable (then
``data_steps`` says so); safe to run again (a record already moved has no clear date).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..crypto import KeyRing
from ..db.models import DataStep, ServiceRecord
from .views import is_normal

STEP = "0005_restricted_dates"

RECORDS = ServiceRecord.__table__
BATCH = 1000

_PAGE = (
    select(RECORDS.c.id, RECORDS.c.upstream_id, RECORDS.c.sealed, RECORDS.c.date, RECORDS.c.next_due_date)
    .where(RECORDS.c.id > bindparam("after"), RECORDS.c.date.is_not(None))
    .order_by(RECORDS.c.id)
    .limit(BATCH)
)
_MOVE = (
    update(RECORDS)
    .where(RECORDS.c.id == bindparam("rid"))
    .values(sealed=bindparam("new_sealed"), key_id=bindparam("kid"), date=None, next_due_date=None)
)


def moved(keys: KeyRing, row: Any) -> bytes | None:
    """The new sealed part for a restricted record (its dates inside), or None for an N record."""
    aad = f"record:{row.upstream_id}"
    data = keys.open(row.sealed, aad)
    if is_normal(data.get("label")):
        return None
    data["date"] = row.date.isoformat()
    data["next_due_date"] = row.next_due_date.isoformat() if row.next_due_date else None
    return keys.seal_json(json.dumps(data, ensure_ascii=False, separators=(",", ":")), aad)


async def hide_restricted_dates(
    sessions: async_sessionmaker[AsyncSession], keys: KeyRing, *, progress: Callable[[int], None] | None = None
) -> tuple[int, int] | None:
    """Move the dates of every restricted record into its sealed part: (moved, unreadable), or None
    when the step had already finished. A record that cannot be decrypted (its key is no longer in
    the ring) is counted and left; the step is then not marked done, so the next run tries again."""
    async with sessions() as s:
        if await s.get(DataStep, STEP) is not None:
            return None
    after, moved_n, unreadable = 0, 0, 0
    while True:
        async with sessions.begin() as s:
            rows = (await s.execute(_PAGE, {"after": after})).all()
            if not rows:
                break
            changes = []
            for row in rows:
                try:
                    sealed = moved(keys, row)
                except Exception:  # a retired key: say how many, never which or what
                    unreadable += 1
                    continue
                if sealed is not None:
                    changes.append({"rid": row.id, "new_sealed": sealed, "kid": keys.active_key})
            if changes:
                await s.execute(_MOVE, changes)
            moved_n += len(changes)
            after = rows[-1].id
        if progress:
            progress(len(rows))
    if not unreadable:
        async with sessions.begin() as s:
            s.add(DataStep(name=STEP, done_at=dt.datetime.now(dt.UTC)))
    return moved_n, unreadable
