"""Readers by day: ``reader_days`` holds one row per (local day, institution, identity) that read an
archive of the institution that day. The statistics count distinct readers in this narrow table
instead of placing every ``archive_read`` audit row through the wide archives table (at 500,000
archives that join and its sort were most of the page's time, ``bench/stats.py``).

* :func:`note_read` — written with each read's audit row, in the same transaction;
* :func:`fill_from_audit` — the reads already in the audit log (the 0006 backfill; idempotent);
* :func:`forget_before` — what the audit log's retention no longer keeps (the daily job);
* :func:`institution_readers_query`, :func:`area_readers_query` — the distinct readers of a period
  per institution, and per county and for the city.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, delete, distinct, func, null, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import LOCAL_ZONE
from ..db.models import Archive, AuditEvent, Institution, ReaderDay

READER_DAYS, AUDIT, ARCHIVES = ReaderDay.__table__, AuditEvent.__table__, Archive.__table__
INSTITUTIONS = Institution.__table__
READ = "archive_read"  # records.service.READ (not imported: records imports this module)
BATCH = 10_000


def local_day(at: dt.datetime) -> dt.date:
    return at.astimezone(LOCAL_ZONE).date()


def _insert(s: AsyncSession):
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (a reader counts once a day)."""
    make = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    return make(READER_DAYS).on_conflict_do_nothing()


async def note_read(
    s: AsyncSession, identity_id: int, county_code: str, institution_code: str, at: dt.datetime
) -> None:
    """The identity read an archive of the institution at ``at``: its row for that day, once."""
    await s.execute(
        _insert(s),
        {
            "day": local_day(at),
            "institution_code": institution_code,
            "identity_id": identity_id,
            "county_code": county_code,
        },
    )


_READS = (
    select(AUDIT.c.id, AUDIT.c.at, AUDIT.c.actor_id, ARCHIVES.c.county_code, ARCHIVES.c.institution_code)
    .join(ARCHIVES, ARCHIVES.c.id == AUDIT.c.archive_id)
    .where(AUDIT.c.action == READ, AUDIT.c.result == "ok", AUDIT.c.actor_type == "identity")
    .order_by(AUDIT.c.id)
    .limit(BATCH)
)


async def fill_from_audit(
    sessions: async_sessionmaker[AsyncSession], *, progress: Callable[[int], None] | None = None
) -> int:
    """Write the ``reader_days`` of every resident read in the audit log (those written since are
    there already; a row present is left). Returns the audit rows read."""
    after, seen = 0, 0
    while True:
        async with sessions.begin() as s:
            rows = (await s.execute(_READS.where(AUDIT.c.id > after))).all()
            if not rows:
                return seen
            days = {
                (local_day(r.at), r.institution_code, int(r.actor_id)): r.county_code
                for r in rows
                if r.actor_id and r.actor_id.isdigit()
            }
            if days:
                await s.execute(
                    _insert(s),
                    [
                        {"day": d, "institution_code": i, "identity_id": who, "county_code": county}
                        for (d, i, who), county in days.items()
                    ],
                )
            after, seen = rows[-1].id, seen + len(rows)
        if progress:
            progress(len(rows))


async def forget_before(sessions: async_sessionmaker[AsyncSession], first_kept: dt.date) -> int:
    """Delete the reader days before ``first_kept`` (the audit log's retention: a reader day says
    who read when, and the figure is not to outlive the audit rows it stands for). How many."""
    async with sessions.begin() as s:
        done = await s.execute(delete(READER_DAYS).where(READER_DAYS.c.day < first_kept))
        return done.rowcount or 0


def _readers(first: dt.date, last: dt.date, *where: Any):
    """Distinct readers over the days, as a scalar subquery correlated by ``where``."""
    rd = READER_DAYS.c
    return select(func.count(distinct(rd.identity_id))).where(rd.day.between(first, last), *where).scalar_subquery()


def _scope(codes: list[str] | None):
    places = select(INSTITUTIONS.c.county_code, INSTITUTIONS.c.code)
    return (places if codes is None else places.where(INSTITUTIONS.c.code.in_(codes))).subquery("scope")


def institution_readers_query(first: dt.date, last: dt.date, codes: list[str] | None):
    """Distinct readers from ``first`` to ``last`` (local days, both included) per institution of
    ``codes`` (None: every one): rows (county, institution, n), each an index-only range scan of
    the primary key and a sort of that institution's reader days alone."""
    scope = _scope(codes)
    return select(
        scope.c.county_code, scope.c.code, _readers(first, last, READER_DAYS.c.institution_code == scope.c.code)
    )


def area_readers_query(first: dt.date, last: dt.date, codes: list[str] | None, *, whole_counties: bool):
    """Distinct readers per county of ``codes`` (rows (county, None, n)) and, for the whole city
    (``codes`` None), the city's (None, None, n). ``whole_counties``: ``codes`` hold every
    institution of their counties (an archive's county is its institution's: the import checks
    it), so a county's count needs no filter by institution — an index-only range scan of
    ``ix_reader_days_county_code_day``; otherwise (one institution's scope) it is filtered."""
    rd, none = READER_DAYS.c, null().cast(String)
    counties = select(_scope(codes).c.county_code).distinct().subquery("scope_counties")
    scoped = [] if codes is None or whole_counties else [rd.institution_code.in_(codes)]
    parts = [
        select(counties.c.county_code, none, _readers(first, last, rd.county_code == counties.c.county_code, *scoped))
    ]
    if codes is None:
        parts.append(select(none, none, _readers(first, last)))
    return union_all(*parts)
