"""The data part of migration 0006: archives imported before it get ``name_birth_bidx``, the
key-group flag and its review date, the residents' reads already audited get their
``reader_days`` (``readers.fill_from_audit``), and every institution is counted
(``archive_counts`` starts empty).

Each archive imported before 0006 has ``name_birth_bidx`` NULL (an import since fills it: name and
birth date are required), which is how they are found, so an interrupted run picks up where it
stopped. Each is decrypted once; its blind indexes are all written again under the current blind
key (so they agree with ``bidx_fp``), guarded by the ciphertext read, as ``keys rotate`` does. Run
by ``wechat-backend db upgrade`` until it has finished once with every archive readable (then
``data_steps`` says so).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..blind_index import archive_indexes
from ..crypto import KeyRing
from ..db.models import Archive, DataStep
from .daily import recount_all
from .key_group import key_group
from .readers import fill_from_audit

STEP = "0006_stats_backfill"

ARCHIVES = Archive.__table__
BATCH = 1000

_PAGE = (
    select(ARCHIVES.c.id, ARCHIVES.c.upstream_id, ARCHIVES.c.sealed)
    .where(ARCHIVES.c.id > bindparam("after"), ARCHIVES.c.name_birth_bidx.is_(None))
    .order_by(ARCHIVES.c.id)
    .limit(BATCH)
)
_LEFT = select(func.count()).select_from(ARCHIVES).where(ARCHIVES.c.name_birth_bidx.is_(None))


def _set(keys: KeyRing):
    values = {k: bindparam(f"b_{k}") for k in archive_indexes(keys, {})}
    values |= {"key_group": bindparam("b_member"), "key_group_review_on": bindparam("b_review_on")}
    return (
        update(ARCHIVES)
        .where(ARCHIVES.c.id == bindparam("b_id"), ARCHIVES.c.sealed == bindparam("b_old"))
        .values(**values)
    )


async def pending(sessions: async_sessionmaker[AsyncSession]) -> int | None:
    """Archives still to do, or None when the step has finished."""
    async with sessions() as s:
        if await s.get(DataStep, STEP) is not None:
            return None
        return await s.scalar(_LEFT) or 0


async def backfill(
    sessions: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    today: dt.date,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, int] | None:
    """(archives filled, unreadable archives, institutions counted), or None when the step had
    already finished. An archive that cannot be decrypted (its key is no longer in the ring) is
    counted and left; the step is then not marked done, so the next run tries it again."""
    if await pending(sessions) is None:
        return None
    update_one = _set(keys)
    after, filled, unreadable = 0, 0, 0
    while True:
        async with sessions.begin() as s:
            rows = (await s.execute(_PAGE, {"after": after})).all()
            if not rows:
                break
            changes = []
            for row in rows:
                try:
                    fields = keys.open(row.sealed, f"archive:{row.upstream_id}")
                except Exception:  # a retired key: say how many, never which
                    unreadable += 1
                    continue
                member, review_on = key_group(fields, today)
                indexes = {f"b_{k}": v for k, v in archive_indexes(keys, fields).items()}
                changes.append(
                    {"b_id": row.id, "b_old": row.sealed, "b_member": member, "b_review_on": review_on, **indexes}
                )
            if changes:
                await s.execute(update_one, changes)
            filled += len(changes)
            after = rows[-1].id
        if progress:
            progress(len(rows))
    await fill_from_audit(sessions)  # the reads before 0006 (idempotent, so a rerun is harmless)
    institutions = await recount_all(sessions)
    if not unreadable:
        async with sessions.begin() as s:
            s.add(DataStep(name=STEP, done_at=dt.datetime.now(dt.UTC)))
    return filled, unreadable, institutions
