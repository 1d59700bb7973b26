"""The daily due scan, and the due items it reads.

``due_items`` holds, per archive and reminder kind, the next due date: set at import from records
labelled N and from the birth date (``schedule``), replaced by a later record of the same kind. The
scan for day D reads the items with D < due ≤ D + ``lead_days`` (an index range, never every
record) and queues one reminder per (archive, kind, due date, recipient): running it again, or on
several workers at once, adds nothing (the outbox's dedup key is unique). The worker runs it once a
day from ``[notify] scan_at``; ``wechat-backend notify scan [--date D]`` runs it on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock
from ..config import NotifySettings
from ..crypto import KeyRing
from ..db.models import Archive, DueItem, DueScan
from .kinds import CHILD_CHECK_DUE, EXAM_DUE
from .queue import Event, Queuer
from .schedule import next_child_check, next_exam

log = logging.getLogger("wechat_backend.notify")

ITEMS = DueItem.__table__
ARCHIVES = Archive.__table__
SCANS = DueScan.__table__
BATCH = 1000
CHUNK = 1000  # rows per multi-row INSERT (4 parameters each: far below either database's limit)
STALE_SCAN = dt.timedelta(minutes=30)  # a scan that started this long ago and never finished is taken over

Progress = Callable[[int, int], None]  # (items done, items in the window)


# --------------------------------------------------------------------------- keeping the items


@dataclass(frozen=True)
class ItemChange:
    """A due item set (``due_on``) or closed (None) by something dated ``basis_on``."""

    archive_id: int
    kind: str
    due_on: dt.date | None
    basis_on: dt.date


def latest(changes: Iterable[ItemChange]) -> list[ItemChange]:
    """The change with the latest basis per (archive, kind); a tie goes to the later one in order."""
    out: dict[tuple[int, str], ItemChange] = {}
    for c in changes:
        mine = out.get((c.archive_id, c.kind))
        if mine is None or c.basis_on >= mine.basis_on:
            out[(c.archive_id, c.kind)] = c
    return list(out.values())


async def apply_changes(s: AsyncSession, changes: Iterable[ItemChange]) -> None:
    """Write record-made changes: a later basis replaces the stored item, a closing one deletes it."""
    chosen = latest(changes)
    sets = [
        {"archive_id": c.archive_id, "kind": c.kind, "due_on": c.due_on, "basis_on": c.basis_on}
        for c in chosen
        if c.due_on is not None
    ]
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(sets), CHUNK):  # one multi-row statement per chunk, not one per row
        stmt = insert(ITEMS).values(sets[start : start + CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=["archive_id", "kind"],
            set_={"due_on": stmt.excluded.due_on, "basis_on": stmt.excluded.basis_on},
            where=ITEMS.c.basis_on <= stmt.excluded.basis_on,
        )
        await s.execute(stmt)
    for c in chosen:
        if c.due_on is None:
            await s.execute(
                ITEMS.delete().where(
                    ITEMS.c.archive_id == c.archive_id, ITEMS.c.kind == c.kind, ITEMS.c.basis_on <= c.basis_on
                )
            )


async def add_if_missing(s: AsyncSession, changes: Iterable[ItemChange]) -> None:
    """Write birth-date items where the archive has none of that kind yet (a record's item wins)."""
    rows = [
        {"archive_id": c.archive_id, "kind": c.kind, "due_on": c.due_on, "basis_on": c.basis_on}
        for c in latest(changes)
        if c.due_on is not None
    ]
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), CHUNK):
        stmt = insert(ITEMS).values(rows[start : start + CHUNK])
        await s.execute(stmt.on_conflict_do_nothing(index_elements=["archive_id", "kind"]))


# --------------------------------------------------------------------------- the scan


def window(day: dt.date, until: dt.date) -> Select[Any]:
    """The items due after ``day`` and by ``until``: an index range of ``due_items.due_on``."""
    return (
        select(ITEMS.c.id, ITEMS.c.archive_id, ITEMS.c.kind, ITEMS.c.due_on)
        .where(ITEMS.c.due_on > day, ITEMS.c.due_on <= until)
        .order_by(ITEMS.c.id)
    )


@dataclass
class ScanReport:
    day: dt.date
    items: int = 0
    queued: int = 0
    seconds: float = 0.0
    rolled: int = 0  # schedule-by-age items moved past their passed date


ROLLING = (CHILD_CHECK_DUE, EXAM_DUE)  # items that follow a schedule by age, not a record's date
_PASSED = (
    select(ITEMS.c.id, ITEMS.c.kind, ITEMS.c.due_on, ARCHIVES.c.upstream_id, ARCHIVES.c.sealed)
    .join(ARCHIVES, ARCHIVES.c.id == ITEMS.c.archive_id)
    .where(ITEMS.c.kind.in_(ROLLING), ITEMS.c.due_on <= bindparam("day"))
)
_MOVE = update(ITEMS).where(ITEMS.c.id == bindparam("item")).values(due_on=bindparam("new_due"))
_DROP = ITEMS.delete().where(ITEMS.c.id == bindparam("item"))


class DueScanner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queuer: Queuer,
        settings: NotifySettings,
        clock: Clock,
        keyring: KeyRing,
    ) -> None:
        self._sessions = sessions
        self._queuer = queuer
        self._keys = keyring
        self._settings = settings
        self._clock = clock
        self._zone = ZoneInfo(settings.timezone)

    def today(self) -> dt.date:
        return self._clock.now().astimezone(self._zone).date()

    async def scan(self, day: dt.date | None = None, *, progress: Progress | None = None) -> ScanReport:
        """Queue the reminders due within ``lead_days`` after ``day`` (default: today)."""
        day = day or self.today()
        report = ScanReport(day)
        started = time.perf_counter()
        report.rolled = await self._roll_forward(day)
        until = day + dt.timedelta(days=self._settings.lead_days)
        async with self._sessions() as s:
            items = (await s.execute(window(day, until))).all()
        total = len(items)
        for start in range(0, total, BATCH):
            chunk = items[start : start + BATCH]
            events = [Event(r.kind, r.archive_id, r.due_on, r.due_on.isoformat()) for r in chunk]
            async with self._sessions.begin() as s:
                report.queued += await self._queuer.queue(s, events, self._clock.now(), day)
            report.items += len(chunk)
            if progress:
                progress(report.items, total)
        report.seconds = time.perf_counter() - started
        log.info(
            "due scan for %s: %d items due by %s, %d reminders queued (%.1f s)",
            day,
            report.items,
            until,
            report.queued,
            report.seconds,
        )
        return report

    async def _roll_forward(self, day: dt.date) -> int:
        """A child check or a yearly exam whose date passed with no new record: the next one on the
        schedule (the archive's sealed birth date says when), or gone once past the ages it covers."""
        moved, dropped = [], []
        async with self._sessions() as s:
            passed = (await s.execute(_PASSED, {"day": day})).all()
        for row in passed:
            try:
                birth = dt.date.fromisoformat(self._keys.open(row.sealed, f"archive:{row.upstream_id}")["birth_date"])
            except Exception:  # unreadable: leave the item, it is simply never in a window again
                continue
            if row.kind == CHILD_CHECK_DUE:
                due = next_child_check(birth, day)
            else:
                due = next_exam(birth, row.due_on, day)
                while due is not None and due <= day:
                    due = next_exam(birth, due, day)
            (moved if due is not None else dropped).append({"item": row.id, "new_due": due})
        if moved or dropped:
            async with self._sessions.begin() as s:
                if moved:
                    await s.execute(_MOVE, moved)
                if dropped:
                    await s.execute(_DROP, [{"item": d["item"]} for d in dropped])
        return len(moved) + len(dropped)

    # ------------------------------------------------------------------ once a day, in the worker

    def _scan_time_today(self, now: dt.datetime) -> dt.datetime:
        local = now.astimezone(self._zone)
        hour, minute = map(int, self._settings.scan_at.split(":"))
        return dt.datetime.combine(local.date(), dt.time(hour, minute), self._zone)

    async def _take(self, day: dt.date, now: dt.datetime) -> bool:
        """Whether this worker runs ``day``'s scan: the first to insert its row, or whoever finds a
        scan that started long ago and never finished (its worker died)."""
        try:
            async with self._sessions.begin() as s:
                s.add(DueScan(day=day, started_at=now, queued=0))
            return True
        except IntegrityError:
            pass
        async with self._sessions.begin() as s:
            result = await s.execute(
                update(SCANS)
                .where(SCANS.c.day == day, SCANS.c.finished_at.is_(None), SCANS.c.started_at < now - STALE_SCAN)
                .values(started_at=now)
            )
        return bool(result.rowcount)

    async def run_due_today(self) -> ScanReport | None:
        """The day's scan if its time has come and no worker has run it yet."""
        now = self._clock.now()
        if now < self._scan_time_today(now):
            return None
        day = now.astimezone(self._zone).date()
        if not await self._take(day, now):
            return None
        report = await self.scan(day)
        async with self._sessions.begin() as s:
            await s.execute(
                update(SCANS).where(SCANS.c.day == day).values(finished_at=self._clock.now(), queued=report.queued)
            )
        return report

    async def run(self, stop: asyncio.Event, *, every: float = 30.0) -> None:
        while not stop.is_set():
            try:
                await self.run_due_today()
            except Exception:
                log.exception("due scan failed; next try in %.0f s", every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
