"""Numbers for staff: pushes queued, sent, skipped and dead, by kind, county and institution — in
one query (the archive a push is about gives its county and institution)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Archive, Notification

NOTES = Notification.__table__
ARCHIVES = Archive.__table__


def _count(status: str) -> Any:
    return func.sum(case((NOTES.c.status == status, 1), else_=0)).label(status)


PUSH_COUNTS = (
    select(
        NOTES.c.kind,
        ARCHIVES.c.county_code,
        ARCHIVES.c.institution_code,
        func.count().label("queued"),
        _count("pending"),
        _count("sent"),
        _count("skipped"),
        _count("dead"),
    )
    .select_from(NOTES.outerjoin(ARCHIVES, ARCHIVES.c.id == NOTES.c.archive_id))
    .group_by(NOTES.c.kind, ARCHIVES.c.county_code, ARCHIVES.c.institution_code)
    .order_by(ARCHIVES.c.county_code, ARCHIVES.c.institution_code, NOTES.c.kind)
)


async def push_counts(s: AsyncSession, *, county: str | None = None) -> list[Any]:
    """Rows of (kind, county_code, institution_code, queued, pending, sent, skipped, dead)."""
    stmt = PUSH_COUNTS.where(ARCHIVES.c.county_code == county) if county else PUSH_COUNTS
    return list((await s.execute(stmt)).all())
