"""Flow figures within a period, by institution, each one SQL aggregate:

* readers — distinct resident identities that read an archive of the institution (an
  ``archive_read`` audit row, result ok), counted in ``reader_days`` (one row per local day,
  institution and identity, written with the audit row: ``readers.py``); counted distinct again
  per county and for the city, since one person may read archives of two institutions;
* pushes sent (by ``sent_at``), skipped and dead (by ``updated_at``), by the institution of the
  archive the push is about (a push about no archive counts in the city's total only);
* questions received (``feedback.created_at``) and answered (``replied_at``) by the inbox they went
  to (``feedback.institution_code``; None, the city's inbox, counts in the city's total only), and
  how long each answered one waited, for the medians;
* follows by an institution's QR code — identities whose ``subscribed_at`` is in the period and
  whose ``scene_institution_code`` is that institution.

Pushes find their institution through their archive (:func:`pushes_query`), an index-only join on
``ix_archives_id_place`` on PostgreSQL: the archives table itself is wide (each row carries its
ciphertext). Readers no longer touch the audit log or the archives: at 500,000 archives placing a
month's 200,000 reads through the archives and sorting them for distinct readers was most of the
page's time (``bench/stats.py``). ``notifications`` has no index on ``sent_at`` or ``updated_at``:
the pushes are a scan of that (narrow) table.

``codes`` limits everything to those institutions (None: the whole city, with the city-only
buckets).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import Archive, Feedback, Identity, Notification
from .readers import area_readers_query, institution_readers_query, local_day

ARCHIVES, NOTES = Archive.__table__, Notification.__table__
FEEDBACK, IDENTITIES = Feedback.__table__, Identity.__table__

PUSH_KEYS = ("pushes_sent", "pushes_skipped", "pushes_dead")


@dataclass
class Flows:
    """Per institution code: ``readers``, the push counts, ``questions``, ``qr_follows``; the
    distinct readers per county and city; what belongs to the city alone; each answer's wait."""

    by_institution: dict[str, Counter[str]] = field(default_factory=dict)
    readers_by_county: dict[str, int] = field(default_factory=dict)
    readers_city: int = 0
    city_only: Counter[str] = field(default_factory=Counter)
    waits: list[tuple[str | None, float]] = field(default_factory=list)  # (institution, hours)

    def add(self, institution: str | None, key: str, n: int) -> None:
        if institution is None:
            self.city_only[key] += n
        else:
            self.by_institution.setdefault(institution, Counter())[key] += n


def _within(column, start: dt.datetime, end: dt.datetime):
    return and_(column >= start, column < end)


def pushes_query(start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    """Pushes sent, skipped and dead in the period, placed by their archive. Rows (county,
    institution, kind, n), kind 1–3 as :data:`PUSH_KEYS`; both None: pushes about no archive."""
    sent = and_(NOTES.c.status == "sent", _within(NOTES.c.sent_at, start, end))
    skipped = and_(NOTES.c.status == "skipped", _within(NOTES.c.updated_at, start, end))
    dead = and_(NOTES.c.status == "dead", _within(NOTES.c.updated_at, start, end))
    kind = case((sent, 1), (skipped, 2), else_=3).label("kind")
    pushes = select(NOTES.c.archive_id, kind).where(or_(sent, skipped, dead)).subquery("pushes")
    query = (
        select(ARCHIVES.c.county_code, ARCHIVES.c.institution_code, pushes.c.kind, func.count())
        .select_from(pushes.outerjoin(ARCHIVES, ARCHIVES.c.id == pushes.c.archive_id))
        .group_by(ARCHIVES.c.county_code, ARCHIVES.c.institution_code, pushes.c.kind)
    )
    return query if codes is None else query.where(ARCHIVES.c.institution_code.in_(codes))


def local_days(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first and last local day of [start, end) (``Period.utc_bounds``: local midnights)."""
    return local_day(start), local_day(end - dt.timedelta(microseconds=1))


def _by_institution(column, timestamp, start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    query = select(column, func.count()).where(_within(timestamp, start, end)).group_by(column)
    return query if codes is None else query.where(column.in_(codes))


def waits_query(start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    """The questions answered in the period: (institution, asked at, answered at)."""
    query = select(FEEDBACK.c.institution_code, FEEDBACK.c.created_at, FEEDBACK.c.replied_at).where(
        _within(FEEDBACK.c.replied_at, start, end)
    )
    return query if codes is None else query.where(FEEDBACK.c.institution_code.in_(codes))


async def read_flows(
    sessions: async_sessionmaker[AsyncSession],
    start: dt.datetime,
    end: dt.datetime,
    codes: list[str] | None,
    *,
    whole_counties: bool = True,
) -> Flows:
    """The flows of the period for ``codes`` (``whole_counties``: see
    :func:`readers.area_readers_query`). On PostgreSQL the two readers counts and the rest (pushes
    first) run at once on three sessions of their own: the readers and the pushes are most of the
    time and each is a single-threaded scan and sort, so more cores shorten the wait (each statement
    sees its own snapshot in READ COMMITTED anyway). Each session needs one connection and waits for
    no other, so views at once queue for the pool but cannot deadlock on it."""
    first, last = local_days(start, end)
    asked = _by_institution(FEEDBACK.c.institution_code, FEEDBACK.c.created_at, start, end, codes)
    follows = _by_institution(IDENTITIES.c.scene_institution_code, IDENTITIES.c.subscribed_at, start, end, codes).where(
        IDENTITIES.c.scene_institution_code.is_not(None)
    )
    groups = [
        [institution_readers_query(first, last, codes)],
        [area_readers_query(first, last, codes, whole_counties=whole_counties)],
        [pushes_query(start, end, codes), asked, waits_query(start, end, codes), follows],
    ]

    async def run(s: AsyncSession, queries: list) -> list[list]:
        return [list((await s.execute(q)).all()) for q in queries]

    async def alone(queries: list) -> list[list]:
        async with sessions() as s:
            return await run(s, queries)

    async with sessions() as s:
        concurrent = s.get_bind().dialect.name == "postgresql"
        if not concurrent:
            done = [await run(s, queries) for queries in groups]
    if concurrent:
        done = await asyncio.gather(*map(alone, groups))
    [by_place], [by_area], [pushes, asked_rows, answered, followed] = done
    out = Flows()
    for _, institution, n in by_place:
        out.add(institution, "readers", n)
    for county, _, n in by_area:
        if county is not None:
            out.readers_by_county[county] = n
        else:
            out.readers_city = n
    for _, institution, kind, n in pushes:
        out.add(institution, PUSH_KEYS[kind - 1], n)
    for institution, n in asked_rows:
        out.add(institution, "questions", n)
    for institution, asked_at, replied_at in answered:
        out.add(institution, "answered", 1)
        out.waits.append((institution, (replied_at - asked_at).total_seconds() / 3600))
    for institution, n in followed:
        out.add(institution, "qr_follows", n)
    return out
