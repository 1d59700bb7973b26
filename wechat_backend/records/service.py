"""What a resident reads of a bound archive: the cover, the basic information, the records, one
record, the trends and who read the archive.

Every call, in one transaction:

1. finds the archive among the caller's own bindings (the person's identities on both channels);
   any other id — someone else's, a sibling's record, a made-up one — is the same 404;
2. decides again whether the archive may be shown now (``privacy.visibility``): a county may have
   closed since the binding, a re-import may have added a sensitive programme. A hidden archive
   answers every route with one and the same ``not_open`` body, whatever the reason;
3. opens only what a resident may see: records of a kind that has a section and whose label is
   ``N``, payloads through ``redact_payload``, the basic form through ``redact_basic_info``, and
   only the fields the form dictionaries name;
4. writes its audit row (who, archive, section, record, request, address) in the same transaction:
   if the row cannot be written, nothing is served.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import decide, not_open_message, open_fields, place_from, with_place
from ..binding.person import PERSON_IDS
from ..clock import Clock
from ..config import PrivacySettings
from ..crypto import KeyRing
from ..db.models import Archive, AuditEvent, Binding, Institution, ServiceRecord
from ..errors import BadInput, NotFound, NotOpen
from ..privacy import redact_payload
from ..stats.readers import note_read
from .present import present
from .sections import BY_KEY, RESIDENT_KINDS, SECTION_OF_KIND
from .trends import TrendInput, series
from .views import (
    Record,
    access_entry,
    basic_fields,
    cover,
    cursor_of,
    is_normal,
    list_item,
    next_due,
    opaque,
    read_cursor,
)

READ = "archive_read"  # the audit action of every read of archive data by a resident
STAFF_READ = "staff_archive_view"  # a staff member opening the archive in the 工作台 (staff/opening.py)
PAGE_SIZE = 20
NOTE_MAX = 8

BINDINGS = Binding.__table__
ARCHIVES = Archive.__table__
RECORDS = ServiceRecord.__table__
INSTITUTIONS = Institution.__table__

# The archive, if one of the person's identities bound it (``me``), with the binding that did.
_BOUND = (
    with_place(
        ARCHIVES.c.completeness,
        ARCHIVES.c.county_code,
        ARCHIVES.c.institution_code,
        BINDINGS.c.public_id.label("binding_id"),
        BINDINGS.c.relation,
        BINDINGS.c.sealed.label("binding_sealed"),
    )
    .join(BINDINGS, BINDINGS.c.archive_id == ARCHIVES.c.id)
    .where(BINDINGS.c.identity_id.in_(PERSON_IDS))
    .order_by(BINDINGS.c.created_at, BINDINGS.c.id)
)
BOUND_BY_PUBLIC_ID = _BOUND.where(ARCHIVES.c.public_id == bindparam("archive")).limit(1)
BOUND_BY_ID = _BOUND.where(ARCHIVES.c.id == bindparam("archive_pk")).limit(1)
ALL_BOUND = _BOUND  # every archive the person bound (first binding first), for the home page

_RECORD_COLUMNS = (
    select(
        RECORDS.c.id,
        RECORDS.c.public_id,
        RECORDS.c.upstream_id,
        RECORDS.c.date,
        RECORDS.c.next_due_date,
        RECORDS.c.sealed,
        INSTITUTIONS.c.name.label("institution"),
    )
    .select_from(RECORDS)
    .outerjoin(INSTITUTIONS, INSTITUTIONS.c.code == RECORDS.c.institution_code)
)
RECORDS_OF = _RECORD_COLUMNS.where(RECORDS.c.archive_id == bindparam("archive_pk"))
RECORDS_OF_MANY = _RECORD_COLUMNS.add_columns(RECORDS.c.archive_id).where(
    RECORDS.c.archive_id.in_(bindparam("archive_pks", expanding=True))
)
RECORD_BY_PUBLIC_ID = select(RECORDS.c.archive_id).where(RECORDS.c.public_id == bindparam("record"))
READS_OF = (
    select(AuditEvent.at, AuditEvent.actor_type, AuditEvent.actor_id, AuditEvent.detail)
    .where(
        AuditEvent.archive_id == bindparam("archive_pk"),
        AuditEvent.action.in_((READ, STAFF_READ)),
        AuditEvent.result == "ok",
    )
    .order_by(AuditEvent.id.desc())
    .limit(bindparam("limit"))
)
RELATIONS_ON = select(BINDINGS.c.identity_id, BINDINGS.c.relation).where(
    BINDINGS.c.archive_id == bindparam("archive_pk")
)


@dataclass(frozen=True)
class Opened:
    """A bound archive, decided visible, and the caller's binding to it."""

    row: Any
    fields: dict[str, Any]
    today: dt.date

    @property
    def pk(self) -> int:
        return int(self.row.id)


class RecordsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        policy: PrivacySettings,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._policy = policy
        self._clock = clock

    # ------------------------------------------------------------------ the routes

    async def cover(self, caller: audit.Caller, archive_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, "cover")
            records = await self._records(s, opened)
            await self._read(s, caller, opened, "cover")
            return cover(opened.row, opened.fields, opened.today, records, self._note(opened.row), self._policy)

    async def basic(self, caller: audit.Caller, archive_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, "basic")
            await self._read(s, caller, opened, "basic")
            return {"id": opened.row.public_id, "fields": basic_fields(opened.fields, opened.today, self._policy)}

    async def records(
        self, caller: audit.Caller, archive_id: str, *, kind: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """Newest first, :data:`PAGE_SIZE` a page; ``kind`` is a section key."""
        if kind is not None and (kind not in BY_KEY or kind == "basic"):
            raise BadInput("kind", "请选择要查看的记录类别")
        after = read_cursor(cursor) if cursor else None
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, kind or "records")
            records = await self._records(s, opened)
            await self._read(s, caller, opened, kind or "records")
        chosen = [r for r in records if kind is None or SECTION_OF_KIND[r.kind].key == kind]
        if after is not None:
            chosen = [r for r in chosen if (r.date, r.id) < after]
        page = chosen[:PAGE_SIZE]
        more = len(chosen) > PAGE_SIZE
        return {
            "records": [list_item(r) for r in page],
            "next_cursor": cursor_of(page[-1]) if more else None,
        }

    async def record(self, caller: audit.Caller, record_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            archive_pk = await s.scalar(RECORD_BY_PUBLIC_ID, {"record": record_id}) if opaque(record_id) else None
            opened = await self._open(s, caller, None, "record", archive_pk=archive_pk)
            found = [r for r in await self._records(s, opened) if r.id == record_id]
            if not found:  # restricted, a kind residents never see, or another archive's: not found
                self._refuse(s, caller, opened.pk, "record", "not_readable")
                await s.commit()
                raise NotFound()
            (record,) = found
            await self._read(s, caller, opened, SECTION_OF_KIND[record.kind].key, record_pk=record.pk)
        shown = present(record.kind, record.payload, next_due_date=record.next_due_date)
        return {
            "id": record.id,
            "archive_id": opened.row.public_id,
            "kind": record.kind,
            "section": SECTION_OF_KIND[record.kind].key,
            "title": record.title,
            "date": record.date.isoformat(),
            "institution": record.institution,
            "doctor": record.doctor,
            "sections": shown.sections,
            "next_due_date": record.next_due_date.isoformat() if record.next_due_date else None,
        }

    async def trends(self, caller: audit.Caller, archive_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, "trends")
            records = await self._records(s, opened)
            await self._read(s, caller, opened, "trends")
        found = series(
            (TrendInput(r.kind, r.date, r.payload) for r in records),
            birth_date=dt.date.fromisoformat(opened.fields["birth_date"]),
            sex=str(opened.fields.get("gender") or ""),
            today=opened.today,
        )
        return {"id": opened.row.public_id, "series": [s.to_json() for s in found]}

    async def access_log(self, caller: audit.Caller, archive_id: str, *, limit: int = 50) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, "access_log")
            relations = dict((await s.execute(RELATIONS_ON, {"archive_pk": opened.pk})).all())
            reads = (await s.execute(READS_OF, {"archive_pk": opened.pk, "limit": limit})).all()
            await self._read(s, caller, opened, "access_log")
        institution = opened.row.institution_code
        return {"id": opened.row.public_id, "entries": [access_entry(r, relations, institution) for r in reads]}

    async def set_note(self, caller: audit.Caller, archive_id: str, note: object) -> dict[str, Any]:
        """The binder's private note on their binding (备注, e.g. 大宝), at most :data:`NOTE_MAX` characters."""
        text = note.strip() if isinstance(note, str) else None
        if text is None or len(text) > NOTE_MAX or any(not c.isprintable() for c in text):
            raise BadInput("note", f"备注最多 {NOTE_MAX} 个字，例如“大宝”")
        async with self._sessions.begin() as s:
            row = (await s.execute(BOUND_BY_PUBLIC_ID, {"me": caller.identity_id, "archive": archive_id})).first()
            if row is None or not opaque(archive_id):
                self._refuse(s, caller, None, "note", "not_bound")
                await s.commit()
                raise NotFound()
            sealed = self._keys.seal({"note": text}, f"binding:{row.binding_id}") if text else None
            await s.execute(
                BINDINGS.update()
                .where(BINDINGS.c.public_id == row.binding_id)
                .values(sealed=sealed, key_id=self._keys.active_key if sealed else None)
            )
            audit.record(
                s,
                actor_type="identity",
                actor_id=str(caller.identity_id),
                action="binding_note",
                archive_id=row.id,
                request_id=caller.request_id,
                client_ip=caller.client_ip,
            )
        return {"id": archive_id, "note": text}

    async def home_details(self, caller: audit.Caller, archive_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """For the home page, per archive: the note and, when visible, the next due item and the
        latest record. Two queries whatever the number of archives."""
        wanted, today = set(archive_ids), self._clock.today()
        out: dict[str, dict[str, Any]] = {}
        visible: dict[int, Opened] = {}
        async with self._sessions.begin() as s:
            for row in (await s.execute(ALL_BOUND, {"me": caller.identity_id})).all():
                if row.public_id not in wanted or row.public_id in out:
                    continue
                out[row.public_id] = {"note": self._note(row)}
                opened = Opened(row, open_fields(self._keys, row), today)
                if decide(row, opened.fields, place_from(row), today).visible:
                    visible[opened.pk] = opened
            found: dict[int, list[Record]] = {pk: [] for pk in visible}
            if visible:
                for r in (await s.execute(RECORDS_OF_MANY, {"archive_pks": list(visible)})).all():
                    record = self._readable(r)
                    if record is not None:
                        found[r.archive_id].append(record)
            for pk, opened in visible.items():
                records = sorted(found[pk], key=lambda r: (r.date, r.id), reverse=True)
                await self._read(s, caller, opened, "home")
                out[opened.row.public_id] |= {
                    "next_due": next_due(records, today)[:1],
                    "latest": list_item(records[0]) if records else None,
                }
        return out

    # ------------------------------------------------------------------ steps

    async def _open(
        self,
        s: AsyncSession,
        caller: audit.Caller,
        archive_id: str | None,
        section: str,
        *,
        archive_pk: int | None = None,
    ) -> Opened:
        """The caller's bound archive, visible now — or the 404 / the one ``not_open`` answer."""
        row = None
        if archive_pk is not None:
            row = (await s.execute(BOUND_BY_ID, {"me": caller.identity_id, "archive_pk": archive_pk})).first()
        elif archive_id is not None and opaque(archive_id):
            row = (await s.execute(BOUND_BY_PUBLIC_ID, {"me": caller.identity_id, "archive": archive_id})).first()
        if row is None:
            self._refuse(s, caller, None, section, "not_bound")
            await s.commit()
            raise NotFound()
        today = self._clock.today()
        fields = open_fields(self._keys, row)
        place = place_from(row)
        decision = decide(row, fields, place, today)
        if not decision.visible:
            self._refuse(s, caller, row.id, section, decision.reason)
            await s.commit()
            # One body for every route and every reason: the reason itself is for staff.
            raise NotOpen(not_open_message(place), consult_phone=place.consult_phone)
        return Opened(row, fields, today)

    async def _records(self, s: AsyncSession, opened: Opened) -> list[Record]:
        """The archive's records a resident may read, newest first."""
        rows = (await s.execute(RECORDS_OF, {"archive_pk": opened.pk})).all()
        out = [record for record in map(self._readable, rows) if record is not None]
        out.sort(key=lambda r: (r.date, r.id), reverse=True)
        return out

    def _readable(self, r: Any) -> Record | None:
        """The record as a resident may read it, or None: a kind with no section, or a label not ``N``."""
        sealed = self._keys.open(r.sealed, f"record:{r.upstream_id}")
        kind = sealed.get("kind")
        if kind not in RESIDENT_KINDS or not is_normal(sealed.get("label")):
            return None
        return Record(
            pk=r.id,
            id=r.public_id,
            kind=kind,
            date=r.date,
            next_due_date=r.next_due_date,
            institution=r.institution or "",
            doctor=sealed.get("doctor") or "",
            payload=redact_payload(kind, sealed.get("payload"), self._policy),
        )

    async def _read(
        self, s: AsyncSession, caller: audit.Caller, opened: Opened, section: str, *, record_pk: int | None = None
    ) -> None:
        """The read's audit row and, for the statistics' readers, the identity's reader day."""
        row = opened.row
        await note_read(s, caller.identity_id, row.county_code, row.institution_code, self._clock.now())
        audit.record(
            s,
            actor_type="identity",
            actor_id=str(caller.identity_id),
            action=READ,
            archive_id=opened.pk,
            record_id=record_pk,
            request_id=caller.request_id,
            client_ip=caller.client_ip,
            detail={"section": section},
        )

    def _refuse(self, s: AsyncSession, caller: audit.Caller, archive_pk: int | None, section: str, reason: str) -> None:
        audit.record(
            s,
            actor_type="identity",
            actor_id=str(caller.identity_id),
            action=READ,
            result="denied",
            archive_id=archive_pk,
            reason=reason,
            request_id=caller.request_id,
            client_ip=caller.client_ip,
            detail={"section": section},
        )

    def _note(self, row: Any) -> str:
        if row.binding_sealed is None:
            return ""
        return str(self._keys.open(row.binding_sealed, f"binding:{row.binding_id}").get("note") or "")
