"""Import from the upstream public-health system: JSON Lines in, encrypted rows out.

Lines are read as a stream and applied in batches, one transaction per batch, so memory stays flat
whatever the file size and an interruption loses at most the batch in flight (importing again is
safe: the version rule makes it idempotent). Within a batch, institutions go first, then archives,
then records, so a file in the documented order resolves its own references.

Version rule per ``upstream_id``: higher replaces, equal is a no-op, lower is ignored. Rows that
do not change are neither encrypted nor written, so re-importing a file costs a read per batch.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import IngestSettings, PrivacySettings
from ..crypto import KeyRing
from ..db.models import Archive, County, Institution, ServiceRecord, new_public_id, utcnow
from ..keys import archive_indexes
from ..privacy import label_basic_info, label_record
from .lines import ArchiveLine, InstitutionLine, Line, LineError, RecordLine, parse_line

MAX_KEPT_ERRORS = 200


@dataclass
class ImportReport:
    lines: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    seconds: float = 0.0

    def reject(self, line_no: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((line_no, reason))

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0


ErrorSink = Callable[[int, str], None]
Progress = Callable[[int], None]  # bytes (or lines) consumed since the last call


def _outcome(existing: int | None, incoming: int) -> str:
    if existing is None:
        return "inserted"
    return "updated" if incoming > existing else "unchanged"


def read_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, content or None when too long, bytes consumed) for each non-blank line."""
    with path.open("rb") as f:
        for no, raw in enumerate(f, start=1):
            if len(raw) > max_line_bytes:
                yield no, None, len(raw)
            elif raw.strip():
                yield no, raw, len(raw)
            else:
                yield no, b"", len(raw)


class IngestService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        privacy: PrivacySettings,
        settings: IngestSettings,
        *,
        today: Callable[[], dt.date],
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._privacy = privacy
        self._settings = settings
        self._today = today
        self._county_of: dict[str, str] = {}  # institution code -> county code, filled lazily

    # ------------------------------------------------------------------ entry points

    async def import_file(
        self, path: Path, *, on_error: ErrorSink | None = None, progress: Progress | None = None
    ) -> ImportReport:
        return await self.import_stream(
            read_lines(path, self._settings.max_line_bytes), on_error=on_error, progress=progress
        )

    async def import_objects(self, texts: Iterable[str | bytes]) -> ImportReport:
        """For the signed HTTP API: lines already in memory (bounded by the request size)."""
        raw = ((no, t if isinstance(t, bytes) else t.encode(), 0) for no, t in enumerate(texts, start=1))
        return await self.import_stream(raw)

    async def import_stream(
        self,
        lines: Iterable[tuple[int, bytes | None, int]],
        *,
        on_error: ErrorSink | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        report = ImportReport()
        started = time.perf_counter()
        today = self._today()

        def reject(no: int, reason: str) -> None:
            report.reject(no, reason)
            if on_error:
                on_error(no, reason)

        async for batch, consumed in self._batches(lines, today, report, reject):
            await self._apply(batch, report, reject)
            if progress:
                progress(consumed)
        report.seconds = time.perf_counter() - started
        return report

    async def _batches(
        self, lines: Iterable[tuple[int, bytes | None, int]], today: dt.date, report: ImportReport, reject: ErrorSink
    ) -> AsyncIterator[tuple[list[tuple[int, Line]], int]]:
        batch: list[tuple[int, Line]] = []
        consumed = 0
        for no, raw, size in lines:
            consumed += size
            if raw == b"":
                continue
            report.lines += 1
            if raw is None:
                reject(no, f"该行超过 {self._settings.max_line_bytes} 字节")
                continue
            try:
                batch.append((no, parse_line(raw, today)))
            except LineError as exc:
                reject(no, exc.reason)
            if len(batch) >= self._settings.batch_size:
                yield batch, consumed
                batch, consumed = [], 0
        if batch or consumed:
            yield batch, consumed

    # ------------------------------------------------------------------ one batch

    async def _apply(self, batch: list[tuple[int, Line]], report: ImportReport, reject: ErrorSink) -> None:
        if not batch:
            return
        try:
            async with self._sessions.begin() as s:
                counts = await self._write(s, batch, reject)
        except (IntegrityError, DBAPIError):
            # A conflict the checks could not see (e.g. a concurrent import): apply line by line so
            # only the offending line is rejected and everything else still lands.
            if len(batch) == 1:
                reject(batch[0][0], "与数据库中已有数据冲突（机构代码重复或并发导入），请稍后重试")
                return
            for item in batch:
                await self._apply([item], report, reject)
            return
        report.inserted += counts["inserted"]
        report.updated += counts["updated"]
        report.unchanged += counts["unchanged"]

    async def _write(self, s: AsyncSession, batch: list[tuple[int, Line]], reject: ErrorSink) -> dict[str, int]:
        counts = {"inserted": 0, "updated": 0, "unchanged": 0}
        institutions = [(n, x) for n, x in batch if isinstance(x, InstitutionLine)]
        archives = [(n, x) for n, x in batch if isinstance(x, ArchiveLine)]
        records = [(n, x) for n, x in batch if isinstance(x, RecordLine)]
        if institutions:
            await self._write_institutions(s, institutions, counts, reject)
        if archives:
            await self._write_archives(s, archives, counts, reject)
        if records:
            await self._write_records(s, records, counts, reject)
        return counts

    async def _existing(self, s: AsyncSession, model: Any, upstream_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        rows = await s.execute(
            select(model.upstream_id, model.id, model.version).where(model.upstream_id.in_(set(upstream_ids)))
        )
        return {u: (i, v) for u, i, v in rows}

    def _decide(
        self, items: list[tuple[int, Any]], existing: dict[str, tuple[int, int]], counts: dict[str, int]
    ) -> list[tuple[int, Any]]:
        """Apply the version rule line by line; returns the lines whose content must be written
        (the last winner per upstream_id)."""
        current = {u: v for u, (_, v) in existing.items()}
        winners: dict[str, tuple[int, Any]] = {}
        for no, line in items:
            outcome = _outcome(current.get(line.upstream_id), line.version)
            counts[outcome] += 1
            if outcome != "unchanged":
                current[line.upstream_id] = line.version
                winners[line.upstream_id] = (no, line)
        return list(winners.values())

    async def _upsert(self, s: AsyncSession, table: Table, rows: list[dict[str, Any]], keep: set[str]) -> None:
        """INSERT … ON CONFLICT (upstream_id) DO UPDATE … WHERE the stored version is lower: the
        version rule holds even against a concurrent importer."""
        if not rows:
            return
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table)
        changed = {c: stmt.excluded[c] for c in rows[0] if c not in keep}
        stmt = stmt.on_conflict_do_update(
            index_elements=["upstream_id"], set_=changed, where=table.c.version < stmt.excluded.version
        )
        await s.execute(stmt, rows)

    # ------------------------------------------------------------------ per type

    async def _write_institutions(self, s: AsyncSession, items: list, counts: dict[str, int], reject: ErrorSink):
        by_code = dict(
            (
                await s.execute(
                    select(Institution.code, Institution.upstream_id).where(
                        Institution.code.in_({x.code for _, x in items})
                    )
                )
            ).all()
        )
        ok = []
        for no, x in items:
            owner = by_code.setdefault(x.code, x.upstream_id)
            if owner != x.upstream_id:
                reject(no, f"机构代码 {x.code} 已属于另一机构（upstream_id 不同）")
            else:
                ok.append((no, x))
        existing = await self._existing(s, Institution, (x.upstream_id for _, x in ok))
        winners = self._decide(ok, existing, counts)
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
        await self._upsert(s, Institution.__table__, rows, keep={"upstream_id", "created_at"})
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

    async def _write_archives(self, s: AsyncSession, items: list, counts: dict[str, int], reject: ErrorSink):
        county_of = await self._counties_for(s, {x.institution_code for _, x in items})
        ok = []
        for no, x in items:
            county = county_of.get(x.institution_code)
            if county is None:
                reject(no, f"建档机构 {x.institution_code} 尚未导入，请先导入机构（type=institution）")
            elif not x.archive_no.startswith(county):
                reject(no, "健康档案编号前6位应为建档机构所在县（市、区）的行政区划代码")
            else:
                ok.append((no, x))
        existing = await self._existing(s, Archive, (x.upstream_id for _, x in ok))
        winners = self._decide(ok, existing, counts)
        keys, now = self._keys, utcnow()
        rows = []
        for _, x in winners:
            fields = x.personal_fields()
            fields["labels"] = {k: v.to_json() for k, v in label_basic_info(x.basic_info, self._privacy).items()}
            rows.append(
                {
                    "public_id": new_public_id(),
                    "upstream_id": x.upstream_id,
                    "version": x.version,
                    "county_code": county_of[x.institution_code],
                    "institution_code": x.institution_code,
                    "status": x.status,
                    "open_to_resident": x.open_to_resident,
                    "completeness": x.completeness,
                    "sealed": keys.seal(fields, f"archive:{x.upstream_id}"),
                    "key_id": keys.active_key,
                    **archive_indexes(keys, fields),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await self._upsert(s, Archive.__table__, rows, keep={"upstream_id", "public_id", "created_at"})

    async def _write_records(self, s: AsyncSession, items: list, counts: dict[str, int], reject: ErrorSink):
        wanted = {x.archive_upstream_id for _, x in items}
        archive_ids = dict(
            (await s.execute(select(Archive.upstream_id, Archive.id).where(Archive.upstream_id.in_(wanted)))).all()
        )
        ok = []
        for no, x in items:
            if x.archive_upstream_id in archive_ids:
                ok.append((no, x))
            else:
                reject(no, "所属档案尚未导入（archive_upstream_id 未知），请在档案导入后重新发送")
        existing = await self._existing(s, ServiceRecord, (x.upstream_id for _, x in ok))
        winners = self._decide(ok, existing, counts)
        keys, now = self._keys, utcnow()
        rows = []
        for _, x in winners:
            label = label_record(x.kind, x.diagnosis_codes, x.payload, self._privacy)
            sealed = {
                "kind": x.kind,
                "doctor": x.doctor,
                "diagnosis_codes": list(x.diagnosis_codes),
                "payload": x.payload,
                "label": label.to_json(),
            }
            rows.append(
                {
                    "public_id": new_public_id(),
                    "upstream_id": x.upstream_id,
                    "version": x.version,
                    "archive_id": archive_ids[x.archive_upstream_id],
                    "date": x.date,
                    "next_due_date": x.next_due_date,
                    "institution_code": x.institution_code,
                    "sealed": keys.seal(sealed, f"record:{x.upstream_id}"),
                    "key_id": keys.active_key,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await self._upsert(s, ServiceRecord.__table__, rows, keep={"upstream_id", "public_id", "created_at"})
