"""Stock figures per institution (``archive_counts``), recounted from the archives' clear columns
whenever something that moves them changes: an import, a staff opening decision, a binding.

A recount locks its institution's row first and counts after, so two changes in one institution
recount one after the other and the second sees the first (PostgreSQL's READ COMMITTED takes a new
snapshot per statement); the last recount to commit is always right. One institution is at most
some tens of thousands of archives: a recount reads an index range, no ciphertext.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ..db.models import Archive, ArchiveCount, Binding, utcnow


def opened_clause() -> ColumnElement[bool]:
    """是否开放给居民 (the staff's decision if any, else the upstream's) and status 正常. The county
    switch is not in it: it is applied when the figures are read."""
    return and_(func.coalesce(Archive.open_override, Archive.open_to_resident).is_(True), Archive.status == "normal")


def _counts(codes: list[str]):
    opened = opened_clause()
    bound = and_(opened, exists().where(Binding.archive_id == Archive.id))
    return (
        select(
            Archive.county_code,
            Archive.institution_code,
            func.count(),
            func.coalesce(func.sum(case((Archive.key_group.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((opened, 1), else_=0)), 0),
            func.coalesce(func.sum(case((bound, 1), else_=0)), 0),
        )
        .where(Archive.institution_code.in_(codes))
        .group_by(Archive.county_code, Archive.institution_code)
    )


async def recount(s: AsyncSession, institution_codes: Iterable[str]) -> None:
    """Recount these institutions' figures inside the caller's transaction (after its changes)."""
    codes = sorted({c for c in institution_codes if c})
    if not codes:
        return
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    rows = (await s.execute(_counts(codes))).all()
    # Lock (creating where missing) in a fixed order, then count again: the first count only
    # found which (county, institution) pairs exist.
    pairs = sorted({(r[0], r[1]) for r in rows})
    existing = select(ArchiveCount.county_code, ArchiveCount.institution_code).where(
        ArchiveCount.institution_code.in_(codes)
    )
    pairs = sorted(set(pairs) | {(c, i) for c, i in (await s.execute(existing)).all()})
    if not pairs:
        return
    await s.execute(
        insert(ArchiveCount)
        .values(
            [
                {"county_code": c, "institution_code": i, "archives": 0, "key_group": 0, "opened": 0, "bound": 0}
                for c, i in pairs
            ]
        )
        .on_conflict_do_nothing()
    )
    lock = select(ArchiveCount.county_code).where(ArchiveCount.institution_code.in_(codes))
    if s.bind.dialect.name == "postgresql":
        lock = lock.order_by(ArchiveCount.county_code, ArchiveCount.institution_code).with_for_update()
    await s.execute(lock)
    found = {(r[0], r[1]): r[2:] for r in (await s.execute(_counts(codes))).all()}
    for c, i in pairs:
        archives, key_group, opened, bound = found.get((c, i), (0, 0, 0, 0))
        await s.execute(
            update(ArchiveCount)
            .where(ArchiveCount.county_code == c, ArchiveCount.institution_code == i)
            .values(archives=archives, key_group=key_group, opened=opened, bound=bound, updated_at=utcnow())
        )
