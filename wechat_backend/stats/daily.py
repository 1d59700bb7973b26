"""The statistics' daily job (run by the worker's ``housekeeping`` once a local day): refresh the
key-group flag of archives whose age boundary has come, recount every institution, then write the
day's snapshot of the stock figures. Every step is idempotent: two workers running it the same day,
or one running it twice, leave the same rows.

The snapshot of day D holds the figures as the job found them on D (it runs just after midnight,
so in practice the close of D-1); ``stats --to D`` reads it. The recount of every institution is
the safety net: whatever an interrupted import left uncounted is right again by the next day.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..crypto import KeyRing
from ..db.models import Archive, ArchiveCount, Institution, StatSnapshot
from .key_group import key_group
from .readers import forget_before
from .stock import LIVE
from .tally import recount

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger("wechat_backend.stats")

ARCHIVES, SNAPSHOTS = Archive.__table__, StatSnapshot.__table__
BATCH = 500

# Through ix_archives_key_group_review_on: a day's due archives are the few who turn 7 or 65.
_DUE = select(ARCHIVES.c.id).where(ARCHIVES.c.key_group_review_on <= bindparam("today"))
_SEALED = select(ARCHIVES.c.id, ARCHIVES.c.upstream_id, ARCHIVES.c.version, ARCHIVES.c.sealed).where(
    ARCHIVES.c.id.in_(bindparam("ids", expanding=True))
)
# Guarded by the version read: an archive an import replaced meanwhile already has its new flag.
_SET = (
    update(ARCHIVES)
    .where(ARCHIVES.c.id == bindparam("aid"), ARCHIVES.c.version == bindparam("read_version"))
    .values(key_group=bindparam("member"), key_group_review_on=bindparam("review_on"))
)


@dataclass(frozen=True)
class DailyReport:
    refreshed: int  # archives whose key-group flag was looked at again
    unreadable: int  # of those, archives whose key is no longer in the ring (left as they were)
    institutions: int  # recounted
    snapshot_rows: int
    reader_days_dropped: int = 0  # older than the audit log's retention


async def refresh_key_groups(
    sessions: async_sessionmaker[AsyncSession], keys: KeyRing, today: dt.date
) -> tuple[int, int]:
    """Decrypt only the archives whose ``key_group_review_on`` has come and set their flag again;
    returns (refreshed, unreadable)."""
    async with sessions() as s:
        due = sorted((await s.scalars(_DUE, {"today": today})).all())
    refreshed, unreadable = 0, 0
    for first in range(0, len(due), BATCH):
        async with sessions.begin() as s:
            rows = (await s.execute(_SEALED, {"ids": due[first : first + BATCH]})).all()
            changes = []
            for row in rows:
                try:
                    fields = keys.open(row.sealed, f"archive:{row.upstream_id}")
                except Exception:  # a retired key: counted, never named
                    unreadable += 1
                    continue
                member, review_on = key_group(fields, today)
                changes.append({"aid": row.id, "read_version": row.version, "member": member, "review_on": review_on})
            if changes:
                await s.execute(_SET, changes)
            refreshed += len(changes)
    return refreshed, unreadable


async def recount_all(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Every institution recounted, one transaction each (a recount locks its institution's row)."""
    async with sessions() as s:
        codes = (
            await s.scalars(union(select(Institution.code), select(ArchiveCount.__table__.c.institution_code)))
        ).all()
    for code in sorted(codes):
        async with sessions.begin() as s:
            await recount(s, [code])
    return len(codes)


async def write_snapshot(sessions: async_sessionmaker[AsyncSession], day: dt.date) -> int:
    """``stat_snapshots`` of ``day``: today's stock figures with each county's switch applied."""
    async with sessions.begin() as s:
        rows = [
            {
                "day": day,
                "county_code": r[0],
                "institution_code": r[1],
                "archives": r[2],
                "key_group": r[3],
                "opened": r[4],
                "bound": r[5],
            }
            for r in (await s.execute(LIVE)).all()
        ]
        keep = [r["institution_code"] for r in rows]
        await s.execute(delete(SNAPSHOTS).where(SNAPSHOTS.c.day == day, SNAPSHOTS.c.institution_code.not_in(keep)))
        if rows:
            insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
            stmt = insert(SNAPSHOTS)
            figures = ("archives", "key_group", "opened", "bound")
            await s.execute(
                stmt.values(rows).on_conflict_do_update(
                    index_elements=["day", "county_code", "institution_code"],
                    set_={k: stmt.excluded[k] for k in figures},
                )
            )
    return len(rows)


async def daily_stats(services: Services) -> DailyReport:
    today = services.clock.today()
    refreshed, unreadable = await refresh_key_groups(services.sessions, services.keyring, today)
    institutions = await recount_all(services.sessions)
    written = await write_snapshot(services.sessions, today)
    kept = today - dt.timedelta(days=services.settings.audit.retention_days)
    dropped = await forget_before(services.sessions, kept)
    report = DailyReport(refreshed, unreadable, institutions, written, dropped)
    log.info(
        "statistics for %s: %d key-group flags refreshed (%d unreadable), %d institutions recounted, %d snapshot rows,"
        " %d reader days dropped",
        today,
        refreshed,
        unreadable,
        institutions,
        written,
        dropped,
    )
    return report
