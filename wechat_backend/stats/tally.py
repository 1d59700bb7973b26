"""Stock figures per institution (``archive_counts``), kept current from the archives' clear
columns: recounted after an import and a staff opening decision (:func:`recount`), moved by one on a
binding's first or last (:func:`bound_moved`), and recounted for every institution by the worker's
daily job (``stats.daily``), which also catches anything an interrupted import left behind.

A recount locks its institution's row first and counts after, so two changes in one institution
recount one after the other and the second sees the first (PostgreSQL's READ COMMITTED takes a new
snapshot per statement); the last recount to commit is always right. A recount reads the
institution's archives through ``ix_archives_institution_code`` and no ciphertext, but it is not
free: about 0.3 s for an institution of 83,000 archives on PostgreSQL (``bench/stats.py`` times it
when it builds its data). That is why a binding moves ``bound`` by one instead of recounting (binds
in one institution would otherwise queue behind each other's recount, the row lock held), and why
an import recounts once at its end instead of after every batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ..db.models import Archive, ArchiveCount, Binding, Institution, utcnow

COUNTS = ArchiveCount.__table__


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


async def _lock(s: AsyncSession, pairs: set[tuple[str, str]]) -> None:
    """Make sure each (county, institution) row exists, then lock them in a fixed order."""
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    zero = {"archives": 0, "key_group": 0, "opened": 0, "bound": 0}
    rows = [{"county_code": c, "institution_code": i, **zero} for c, i in sorted(pairs)]
    # A row another transaction is inserting makes this wait for it: after that it is there to lock.
    await s.execute(insert(ArchiveCount).values(rows).on_conflict_do_nothing())
    if s.bind.dialect.name == "postgresql":  # SQLite has one writer at a time anyway
        codes = sorted({i for _, i in pairs})
        await s.execute(
            select(COUNTS.c.county_code)
            .where(COUNTS.c.institution_code.in_(codes))
            .order_by(COUNTS.c.county_code, COUNTS.c.institution_code)
            .with_for_update()
        )


async def recount(s: AsyncSession, institution_codes: Iterable[str]) -> None:
    """Recount these institutions' figures inside the caller's transaction (after its changes)."""
    codes = sorted({c for c in institution_codes if c})
    if not codes:
        return
    # The rows to lock before counting: those kept already and those the institutions' counties
    # name (an archive takes its institution's county at import). Counting only once they are
    # locked is what makes the last recount to commit right.
    kept = select(COUNTS.c.county_code, COUNTS.c.institution_code).where(COUNTS.c.institution_code.in_(codes))
    named = select(Institution.county_code, Institution.code).where(Institution.code.in_(codes))
    pairs = {(c, i) for c, i in (await s.execute(kept)).all()} | {(c, i) for c, i in (await s.execute(named)).all()}
    while True:
        if pairs:
            await _lock(s, pairs)
        found = {(r[0], r[1]): r[2:] for r in (await s.execute(_counts(codes))).all()}
        if found.keys() <= pairs:
            break
        # Archives under a county their institution no longer names (it moved upstream): lock
        # those rows too and count again. Rare; the order then is not the fixed one, which only
        # matters if two such recounts of one institution run at once.
        pairs |= found.keys()
    for c, i in sorted(pairs):
        archives, key_group, opened, bound = found.get((c, i), (0, 0, 0, 0))
        await s.execute(
            update(ArchiveCount)
            .where(ArchiveCount.county_code == c, ArchiveCount.institution_code == i)
            .values(archives=archives, key_group=key_group, opened=opened, bound=bound, updated_at=utcnow())
        )


async def bound_moved(s: AsyncSession, archive_id: int, delta: int) -> None:
    """The archive got its first binding (``delta`` 1) or lost its last (-1), in the caller's
    transaction, which holds the archive's row lock (so two changes of one archive's bindings
    cannot both think they were the first or the last): ``bound`` of its institution moves by
    ``delta`` when the archive is opened. An institution not counted yet is left to its recount."""
    target = select(Archive.county_code, Archive.institution_code).where(Archive.id == archive_id, opened_clause())
    row = (await s.execute(target)).first()
    if row is None:
        return
    await s.execute(
        update(ArchiveCount)
        .where(ArchiveCount.county_code == row.county_code, ArchiveCount.institution_code == row.institution_code)
        .values(bound=ArchiveCount.bound + delta, updated_at=utcnow())
    )
