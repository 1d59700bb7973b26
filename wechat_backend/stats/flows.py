"""Flow figures within a period, by institution, each one SQL aggregate:

* readers — distinct resident identities with an ``archive_read`` audit row (result ok) on an
  archive of the institution (``audit_log (action, at)``); counted distinct again per county and
  for the city, since one person may read archives of two institutions;
* pushes sent (by ``sent_at``), skipped and dead (by ``updated_at``), by the institution of the
  archive the push is about (a push about no archive counts in the city's total only);
* questions received (``feedback.created_at``) and answered (``replied_at``) by the inbox they went
  to (``feedback.institution_code``; None, the city's inbox, counts in the city's total only), and
  how long each answered one waited, for the medians;
* follows by an institution's QR code — identities whose ``subscribed_at`` is in the period and
  whose ``scene_institution_code`` is that institution.

Reads and pushes find their institution through their archive, in one join
(:func:`archive_events_query`). That join is what the statistics cost at scale: the archives table
is wide (each row carries its ciphertext) and a month of a 500,000-archive county holds some
200,000 reads, so PostgreSQL reads the whole table to place them (``bench/stats.py``). Nothing else
here reads the archives. ``notifications`` has no index on ``sent_at`` or ``updated_at``: the
pushes are a scan of that table.

``codes`` limits everything to those institutions (None: the whole city, with the city-only
buckets).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Integer, String, and_, case, distinct, func, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Archive, AuditEvent, Feedback, Identity, Notification
from ..records.service import READ

ARCHIVES, AUDIT, NOTES = Archive.__table__, AuditEvent.__table__, Notification.__table__
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


# What ``archive_events_query`` counts: 0 distinct readers, then pushes by outcome.
EVENT_KEYS = ("readers", *PUSH_KEYS)


def archive_events_query(start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    """Reads and pushes: the flows that belong to an institution through their archive, placed in
    one join with the archives (most of their cost: the archives table is wide, and a period holds
    many reads). Rows (county, institution, kind, n): kind 0 is distinct readers per institution,
    then per county (institution None), then the city (both None); kinds 1–3 are pushes sent,
    skipped, dead per institution (both None: pushes about no archive)."""
    sent = and_(NOTES.c.status == "sent", _within(NOTES.c.sent_at, start, end))
    skipped = and_(NOTES.c.status == "skipped", _within(NOTES.c.updated_at, start, end))
    dead = and_(NOTES.c.status == "dead", _within(NOTES.c.updated_at, start, end))
    none = null().cast(String)
    reads = select(AUDIT.c.archive_id, AUDIT.c.actor_id, literal(0, Integer).label("kind")).where(
        AUDIT.c.action == READ,
        _within(AUDIT.c.at, start, end),
        AUDIT.c.result == "ok",
        AUDIT.c.actor_type == "identity",
    )
    pushes = select(
        NOTES.c.archive_id, none.label("actor_id"), case((sent, 1), (skipped, 2), else_=3).label("kind")
    ).where(or_(sent, skipped, dead))
    events = union_all(reads, pushes).subquery("events")
    placed = select(events.c.actor_id, events.c.kind, ARCHIVES.c.county_code, ARCHIVES.c.institution_code).select_from(
        events.outerjoin(ARCHIVES, ARCHIVES.c.id == events.c.archive_id)
    )
    if codes is not None:
        placed = placed.where(ARCHIVES.c.institution_code.in_(codes))
    placed = placed.cte("placed")  # PostgreSQL materialises a CTE used more than once: one join
    readers = (
        select(placed.c.actor_id, placed.c.county_code, placed.c.institution_code)
        .where(placed.c.kind == 0)
        .distinct()
        .cte("readers")
    )
    zero = literal(0, Integer)
    return union_all(
        select(readers.c.county_code, readers.c.institution_code, zero, func.count()).group_by(
            readers.c.county_code, readers.c.institution_code
        ),
        select(readers.c.county_code, none, zero, func.count(distinct(readers.c.actor_id))).group_by(
            readers.c.county_code
        ),
        select(none, none, zero, func.count(distinct(readers.c.actor_id))),
        select(placed.c.county_code, placed.c.institution_code, placed.c.kind, func.count())
        .where(placed.c.kind > 0)
        .group_by(placed.c.county_code, placed.c.institution_code, placed.c.kind),
    )


def _by_institution(column, timestamp, start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    query = select(column, func.count()).where(_within(timestamp, start, end)).group_by(column)
    return query if codes is None else query.where(column.in_(codes))


def waits_query(start: dt.datetime, end: dt.datetime, codes: list[str] | None):
    """The questions answered in the period: (institution, asked at, answered at)."""
    query = select(FEEDBACK.c.institution_code, FEEDBACK.c.created_at, FEEDBACK.c.replied_at).where(
        _within(FEEDBACK.c.replied_at, start, end)
    )
    return query if codes is None else query.where(FEEDBACK.c.institution_code.in_(codes))


async def read_flows(s: AsyncSession, start: dt.datetime, end: dt.datetime, codes: list[str] | None) -> Flows:
    out = Flows()
    for county, institution, kind, n in (await s.execute(archive_events_query(start, end, codes))).all():
        if kind > 0:
            out.add(institution, EVENT_KEYS[kind], n)
        elif institution is not None:
            out.add(institution, "readers", n)
        elif county is not None:
            out.readers_by_county[county] = n
        else:
            out.readers_city = n
    asked = _by_institution(FEEDBACK.c.institution_code, FEEDBACK.c.created_at, start, end, codes)
    for institution, n in (await s.execute(asked)).all():
        out.add(institution, "questions", n)
    for institution, asked_at, replied_at in (await s.execute(waits_query(start, end, codes))).all():
        out.add(institution, "answered", 1)
        out.waits.append((institution, (replied_at - asked_at).total_seconds() / 3600))
    follows = _by_institution(IDENTITIES.c.scene_institution_code, IDENTITIES.c.subscribed_at, start, end, codes).where(
        IDENTITIES.c.scene_institution_code.is_not(None)
    )
    for institution, n in (await s.execute(follows)).all():
        out.add(institution, "qr_follows", n)
    return out
