"""Stock figures per institution as of a day: today's from ``archive_counts`` (kept current, see
``tally``) with each county's switch applied, an earlier day's from that day's snapshot
(``stat_snapshots``, written by the worker's daily job with the switch already applied) — or, when
that day has none, the nearest earlier one, and the answer says which day it is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import ArchiveCount, County, StatSnapshot

COUNTS, SNAPSHOTS, COUNTIES = ArchiveCount.__table__, StatSnapshot.__table__, County.__table__


@dataclass(frozen=True)
class Stock:
    archives: int = 0
    key_group: int = 0
    opened: int = 0
    bound: int = 0


@dataclass(frozen=True)
class StockFigures:
    """``day`` the figures are of; ``None`` with ``missing`` when no snapshot is that old."""

    day: dt.date | None
    by_institution: dict[tuple[str, str], Stock]
    missing: bool = False


def _switched(column):
    """A county whose switch is off has nothing opened (and so nothing bound) for residents."""
    return case((COUNTIES.c.opening.is_(True), column), else_=0)


LIVE = select(
    COUNTS.c.county_code,
    COUNTS.c.institution_code,
    COUNTS.c.archives,
    COUNTS.c.key_group,
    _switched(COUNTS.c.opened),
    _switched(COUNTS.c.bound),
).select_from(COUNTS.outerjoin(COUNTIES, COUNTIES.c.code == COUNTS.c.county_code))


def _snapshot(day: dt.date):
    return select(
        SNAPSHOTS.c.county_code,
        SNAPSHOTS.c.institution_code,
        SNAPSHOTS.c.archives,
        SNAPSHOTS.c.key_group,
        SNAPSHOTS.c.opened,
        SNAPSHOTS.c.bound,
    ).where(SNAPSHOTS.c.day == day)


async def stock_as_of(s: AsyncSession, day: dt.date, today: dt.date, codes: list[str] | None) -> StockFigures:
    """The stock figures of ``day`` (``today``: live), for these institutions (None: all)."""
    if day >= today:
        query, used = LIVE, today
        if codes is not None:
            query = query.where(COUNTS.c.institution_code.in_(codes))
    else:
        used = await s.scalar(select(func.max(SNAPSHOTS.c.day)).where(SNAPSHOTS.c.day <= day))
        if used is None:
            return StockFigures(None, {}, missing=True)
        query = _snapshot(used)
        if codes is not None:
            query = query.where(SNAPSHOTS.c.institution_code.in_(codes))
    rows = (await s.execute(query)).all()
    return StockFigures(used, {(r[0], r[1]): Stock(*map(int, r[2:])) for r in rows})
