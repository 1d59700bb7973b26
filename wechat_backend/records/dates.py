"""The data part of migration 0005: a record not labelled N keeps its dates sealed only.

Before 0005 every record had ``date`` and ``next_due_date`` in clear, and its sealed part had no
dates. For each record whose label is not N, the dates go into the sealed part (re-sealed under the
active key) and the clear columns are emptied. Records labelled N are left as they are. Run by
``wechat-backend db upgrade`` when it crosses 0005; safe to run again (a record already moved has
no clear date and is skipped).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..crypto import KeyRing
from ..db.models import ServiceRecord
from .views import is_normal

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
) -> int:
    """Move the dates of every restricted record into its sealed part; returns how many moved."""
    after, total = 0, 0
    while True:
        async with sessions.begin() as s:
            rows = (await s.execute(_PAGE, {"after": after})).all()
            if not rows:
                return total
            changes = []
            for row in rows:
                sealed = moved(keys, row)
                if sealed is not None:
                    changes.append({"rid": row.id, "new_sealed": sealed, "kid": keys.active_key})
            if changes:
                await s.execute(_MOVE, changes)
            total += len(changes)
            after = rows[-1].id
        if progress:
            progress(len(rows))
