"""Import from the upstream public-health system: JSON Lines in, encrypted rows out.

Lines are read as a stream and applied in batches, one transaction per batch, so memory stays flat
whatever the file size and an interruption loses at most the batch in flight (importing again is
safe: the version rule makes it idempotent). Within a batch, institutions go first, then archives,
then records, so a file in the documented order resolves its own references.

Each batch goes through two stages. *Prepare* (pure CPU: parse, validate, label, encrypt, blind
indexes; see prepare.py) runs in ``[ingest] workers`` processes, a few batches ahead, while *write*
(version lookups, then the upsert) applies the batches in file order; the database's work and ours
overlap on separate cores. Version rule per
``upstream_id``: higher replaces, equal is a no-op, lower is ignored; the upsert repeats the rule
in SQL so it also holds against a concurrent importer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import IngestSettings, NotifySettings, PrivacySettings, SecuritySettings
from ..crypto import KeyRing
from ..db.models import Archive, County, Institution, ServiceRecord, utcnow
from ..notify.kinds import RECORD_ADDED
from ..notify.queue import Event, Queuer
from ..notify.scan import ItemChange, add_if_missing, apply_changes
from ..stats.tally import recount
from .prepare import Prepared, Preparer, RawLine, init_worker, prepare_in_worker
from .report import ImportReport, Tally
from .upsert import lookup, upsert

ErrorSink = Callable[[int, str], None]
Progress = Callable[[int], None]  # bytes consumed since the last call


def read_lines(path: Path, max_line_bytes: int) -> Iterator[RawLine]:
    with path.open("rb") as f:
        for no, raw in enumerate(f, start=1):
            yield no, (None if len(raw) > max_line_bytes else raw), len(raw)


class IngestService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        privacy: PrivacySettings,
        settings: IngestSettings,
        *,
        today: Callable[[], dt.date],
        security: SecuritySettings | None = None,
        queuer: Queuer | None = None,
        notify: NotifySettings | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._today = today
        self._now = now
        # New records labelled N are announced in the import's own transaction (record_added).
        self._queuer = queuer
        self._max_age = dt.timedelta(days=(notify or NotifySettings()).record_max_age_days)
        self._preparer = Preparer(keyring, privacy, settings)
        self._pool_args = (security, privacy, settings)
        self._pool: ProcessPoolExecutor | None = None
        self._county_of: dict[str, str] = {}  # institution code -> county code, filled lazily

    def _workers(self) -> ProcessPoolExecutor | None:
        """The worker processes, started on first use (a file import), reused afterwards."""
        if self._settings.workers <= 0 or self._pool_args[0] is None:
            return None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._settings.workers,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a process with threads
                initializer=init_worker,
                initargs=self._pool_args,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ entry points

    async def import_file(
        self, path: Path, *, on_error: ErrorSink | None = None, progress: Progress | None = None
    ) -> ImportReport:
        return await self.import_stream(
            read_lines(path, self._settings.max_line_bytes), on_error=on_error, progress=progress, parallel=True
        )

    async def import_objects(self, texts: Iterable[str | bytes], *, statuses: bool = False) -> ImportReport:
        """For the signed HTTP API: lines already in memory (bounded by the request size);
        ``statuses`` asks for each line's outcome in ``report.statuses``."""
        limit = self._settings.max_line_bytes

        def line(no: int, text: str | bytes) -> RawLine:
            data = text if isinstance(text, bytes) else text.encode()
            return no, (data if len(data) <= limit else None), 0  # None: the line is too long

        raw = (line(no, t) for no, t in enumerate(texts, start=1))
        return await self.import_stream(raw, statuses=statuses)

    async def import_stream(
        self,
        lines: Iterable[RawLine],
        *,
        on_error: ErrorSink | None = None,
        progress: Progress | None = None,
        parallel: bool = False,
        statuses: bool = False,
    ) -> ImportReport:
        report = ImportReport(statuses={} if statuses else None)
        touched: set[str] = set()  # institutions whose archives changed: recounted at the end
        started = time.perf_counter()
        today = self._today()

        def reject(no: int, reason: str) -> None:
            report.reject(no, reason)
            if on_error:
                on_error(no, reason)

        pool = self._workers() if parallel else None
        loop = asyncio.get_running_loop()
        ahead = (self._settings.workers + 1) if pool else 2  # batches in flight: the writer's and the next
        pending: deque[asyncio.Future[Prepared]] = deque()
        try:
            for chunk in _chunks(iter(lines), self._settings.batch_size):
                if pool is not None:
                    pending.append(loop.run_in_executor(pool, prepare_in_worker, chunk, today))
                else:
                    pending.append(loop.create_task(asyncio.to_thread(self._preparer.prepare, chunk, today)))
                while len(pending) >= ahead:
                    await self._write_batch(await pending.popleft(), report, reject, progress, touched)
            while pending:
                await self._write_batch(await pending.popleft(), report, reject, progress, touched)
        finally:
            for future in pending:
                future.cancel()
        await self._recount(touched)
        report.seconds = time.perf_counter() - started
        return report

    async def _write_batch(
        self, prepared: Prepared, report: ImportReport, reject: ErrorSink, progress: Progress | None, touched: set[str]
    ) -> None:
        report.lines += prepared.lines
        report.add_unknown(prepared.unknown_keys)
        for no, reason in prepared.errors:
            reject(no, reason)
        await self._apply(prepared, report, reject, touched)
        if progress:
            progress(prepared.consumed)

    # ------------------------------------------------------------------ stage 2: the database

    async def _apply(self, prepared: Prepared, report: ImportReport, reject: ErrorSink, touched: set[str]) -> None:
        if not (prepared.institutions or prepared.archives or prepared.records):
            return
        counts = {"inserted": 0, "updated": 0, "unchanged": 0}
        lines: dict[int, str] = {}
        rejected: list[tuple[int, str]] = []
        try:
            async with self._sessions.begin() as s:
                await self._write(
                    s, prepared, Tally(counts, lines), lambda no, why: rejected.append((no, why)), touched
                )
        except (IntegrityError, DBAPIError):
            # A conflict the checks could not see (e.g. a concurrent import): apply line by line so
            # only the offending line is rejected and everything else still lands.
            numbers = prepared.line_numbers()
            if len(numbers) == 1:
                reject(numbers[0], "与数据库中已有数据冲突（机构代码重复或并发导入），请稍后重试")
                return
            for no in numbers:
                await self._apply(prepared.only(no), report, reject, touched)
            return
        if report.statuses is not None:
            report.statuses.update(lines)
        for no, why in rejected:
            reject(no, why)
        for key, n in counts.items():
            setattr(report, key, getattr(report, key) + n)

    async def _write(self, s: AsyncSession, p: Prepared, counts: Tally, reject: ErrorSink, touched: set[str]) -> None:
        if p.institutions:
            await self._write_institutions(s, p.institutions, counts, reject)
        if p.archives:
            await self._write_archives(s, p.archives, counts, reject, touched)
        if p.records:
            await self._write_records(s, p.records, counts, reject)

    async def _versions(self, s: AsyncSession, model: Any, upstream_ids: Iterable[str]) -> dict[str, int]:
        return await lookup(s, model.__table__, "version", set(upstream_ids))

    @staticmethod
    def _decide(items: list[tuple[Any, ...]], current: dict[str, int], counts: Tally) -> list[tuple[Any, ...]]:
        """Apply the version rule line by line; returns the items to write (the last winner per
        upstream_id, so the upsert never touches a row twice)."""
        winners: dict[str, tuple[Any, ...]] = {}
        for item in items:
            no, line = item[0], item[1]
            stored = current.get(line.upstream_id)
            if stored is not None and line.version <= stored:
                counts.add(no, "unchanged")
                continue
            counts.add(no, "inserted" if stored is None else "updated")
            current[line.upstream_id] = line.version
            winners[line.upstream_id] = item
        return list(winners.values())

    async def _write_institutions(self, s: AsyncSession, items: list, counts: Tally, reject: ErrorSink):
        codes = {x.code for _, x in items}
        by_code = dict(
            (
                await s.execute(select(Institution.code, Institution.upstream_id).where(Institution.code.in_(codes)))
            ).all()
        )
        ok = []
        for no, x in items:
            if by_code.setdefault(x.code, x.upstream_id) != x.upstream_id:
                reject(no, f"机构代码 {x.code} 已属于另一机构（upstream_id 不同）")
            else:
                ok.append((no, x))
        winners = self._decide(ok, await self._versions(s, Institution, (x.upstream_id for _, x in ok)), counts)
        if not winners:
            return
        counties = {x.county_code: x.county_name for _, x in winners}
        known = set((await s.scalars(select(County.code).where(County.code.in_(counties)))).all())
        now = utcnow()
        new_counties = [
            {"code": c, "name": n, "opening": False, "phase": "key_populations", "created_at": now, "updated_at": now}
            for c, n in counties.items()
            if c not in known
        ]
        if new_counties:
            await s.execute(County.__table__.insert(), new_counties)
        rows = [
            {
                "upstream_id": x.upstream_id,
                "version": x.version,
                "code": x.code,
                "name": x.name,
                "county_code": x.county_code,
                "consult_phone": x.consult_phone,
                "address": x.address,
                "created_at": now,
                "updated_at": now,
            }
            for _, x in winners
        ]
        await upsert(s, Institution.__table__, rows, keep={"upstream_id", "created_at"})
        for _, x in winners:
            self._county_of[x.code] = x.county_code

    async def _counties_for(self, s: AsyncSession, codes: set[str]) -> dict[str, str]:
        missing = codes - self._county_of.keys()
        if missing:
            rows = await s.execute(
                select(Institution.code, Institution.county_code).where(Institution.code.in_(missing))
            )
            self._county_of.update(dict(rows.all()))
        return self._county_of

    async def _write_archives(self, s: AsyncSession, items: list, counts: Tally, reject: ErrorSink, touched: set[str]):
        county_of = await self._counties_for(s, {x.institution_code for _, x, _ in items})
        ok = []
        for no, x, row in items:
            county = county_of.get(x.institution_code)
            if county is None:
                reject(no, f"建档机构 {x.institution_code} 尚未导入，请先导入机构（type=institution）")
            elif x.archive_county != county:
                reject(no, "健康档案编号前6位应为建档机构所在县（市、区）的行政区划代码")
            else:
                row["county_code"] = county
                ok.append((no, x, row))
        # The institution an updated archive was under before: its figures move too.
        was_under = await lookup(s, Archive.__table__, "institution_code", {x.upstream_id for _, x, _ in ok})
        winners, _ = await self._upsert_newer(s, Archive, ok, counts)
        touched.update(row["institution_code"] for _, _, row in winners)
        touched.update(was_under[x.upstream_id] for _, x, _ in winners if x.upstream_id in was_under)
        with_due = {x.upstream_id: x.due for _, x, _ in winners if x.due}
        if with_due:  # the child checks and the first yearly exam, by age
            ids = await lookup(s, Archive.__table__, "id", set(with_due))
            await add_if_missing(
                s,
                (
                    ItemChange(ids[uid], kind, due_on, dt.date.min)
                    for uid, dues in with_due.items()
                    if uid in ids
                    for kind, due_on in dues
                ),
            )

    async def _recount(self, codes: set[str]) -> None:
        """The stock figures (``stats.tally``) of the institutions whose archives changed: once per
        import, one transaction per institution. A recount reads all of an institution's archives,
        so one after every batch would cost a large import as much as the import itself; the
        worker's daily recount catches up whatever an interrupted import left uncounted."""
        for code in sorted(codes):
            async with self._sessions.begin() as s:
                await recount(s, [code])

    async def _upsert_newer(self, s: AsyncSession, model: Any, ok: list, counts: Tally) -> tuple[list, set[str]]:
        """Write the ``(line_no, line, row)`` items whose version beats the stored one; returns them
        and the upstream ids that were not stored before (inserted, not corrected)."""
        current = await self._versions(s, model, (x.upstream_id for _, x, _ in ok))
        new = {x.upstream_id for _, x, _ in ok} - current.keys()
        winners = self._decide(ok, current, counts)
        rows = [row for _, _, row in winners]
        await upsert(s, model.__table__, rows, keep={"upstream_id", "public_id", "created_at"})
        return winners, new

    async def _write_records(self, s: AsyncSession, items: list, counts: Tally, reject: ErrorSink):
        wanted = {x.archive_upstream_id for _, x, _ in items}
        archive_ids = await lookup(s, Archive.__table__, "id", wanted)
        ok = []
        for no, x, row in items:
            archive_id = archive_ids.get(x.archive_upstream_id)
            if archive_id is None:
                reject(no, "所属档案尚未导入（archive_upstream_id 未知），请在档案导入后重新发送")
            else:
                row["archive_id"] = archive_id
                ok.append((no, x, row))
        winners, new = await self._upsert_newer(s, ServiceRecord, ok, counts)
        changes = [ItemChange(row["archive_id"], x.due[0], x.due[1], x.date) for _, x, row in winners if x.due]
        changes += [ItemChange(row["archive_id"], x.closes, None, x.date) for _, x, row in winners if x.closes]
        await apply_changes(s, changes)
        if self._queuer is not None:
            await self._announce(s, [(x, row) for _, x, row in winners if x.upstream_id in new and x.announce])

    async def _announce(self, s: AsyncSession, fresh: list[tuple[Any, dict[str, Any]]]) -> None:
        """record_added for each new record labelled N, recent enough: loading years of history,
        or a corrected version of a record, pushes nothing."""
        assert self._queuer is not None
        today = self._today()
        oldest = today - self._max_age
        events = [
            Event(RECORD_ADDED, row["archive_id"], x.date, x.upstream_id, record=x.public_id)
            for x, row in fresh
            if x.date is not None and oldest <= x.date <= today
        ]
        if events:
            await self._queuer.queue(s, events, self._now(), today)


def _chunks(lines: Iterator[RawLine], size: int) -> Iterator[list[RawLine]]:
    """Batches of ``size`` non-blank lines (blank lines ride along, for the byte count)."""
    while True:
        chunk: list[RawLine] = []
        counted = 0
        for item in lines:
            chunk.append(item)
            if item[1] is None or item[1].strip():
                counted += 1
                if counted >= size:
                    break
        if not chunk:
            return
        yield chunk
