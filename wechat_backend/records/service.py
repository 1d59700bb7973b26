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

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import decide, not_open_message, open_fields, place_from, with_place
from ..binding.person import PERSON_IDS
from ..binding.rules import RELATION_LABELS
from ..clock import Clock
from ..config import PrivacySettings
from ..crypto import KeyRing
from ..db.models import Archive, AuditEvent, Binding, Institution, ServiceRecord
from ..errors import BadInput, NotFound, NotOpen
from ..privacy import (
    Label,
    age_on,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    redact_basic_info,
    redact_payload,
)
from .present import present, present_basic
from .sections import BY_KEY, KIND_TITLES, RESIDENT_KINDS, SECTION_OF_KIND, SECTIONS
from .trends import TrendInput, series

READ = "archive_read"  # the audit action of every read of archive data by a resident
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
    .where(AuditEvent.archive_id == bindparam("archive_pk"), AuditEvent.action == READ, AuditEvent.result == "ok")
    .order_by(AuditEvent.id.desc())
    .limit(bindparam("limit"))
)
RELATIONS_ON = select(BINDINGS.c.identity_id, BINDINGS.c.relation).where(
    BINDINGS.c.archive_id == bindparam("archive_pk")
)

# A reader in the access log, named from the archive's person's side: whoever bound it as their
# child is a parent of this person, and so on. Identities carry no name.
READER_LABELS = {"self": "本人", "child": "父母", "parent": "子女", "spouse": "配偶", "other": "其他家人"}
# Programmes a resident may see named on the cover (never a sensitive one: those hide the archive).
KEY_GROUP_TAGS = {"hypertension": "高血压", "diabetes": "2型糖尿病", "maternal": "孕产妇", "child": "儿童"}


@dataclass(frozen=True)
class Opened:
    """A bound archive, decided visible, and the caller's binding to it."""

    row: Any
    fields: dict[str, Any]
    today: dt.date

    @property
    def pk(self) -> int:
        return int(self.row.id)


@dataclass(frozen=True)
class Record:
    """A record a resident may read: its kind has a section and its label is ``N``."""

    pk: int
    id: str
    kind: str
    date: dt.date
    next_due_date: dt.date | None
    institution: str
    doctor: str
    payload: dict[str, Any]

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]


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
            self._read(s, caller, opened, "cover")
            return self._cover(opened, records)

    async def basic(self, caller: audit.Caller, archive_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, "basic")
            self._read(s, caller, opened, "basic")
            return {"id": opened.row.public_id, "fields": self._basic_fields(opened)}

    async def records(
        self, caller: audit.Caller, archive_id: str, *, kind: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """Newest first, :data:`PAGE_SIZE` a page; ``kind`` is a section key."""
        if kind is not None and (kind not in BY_KEY or kind == "basic"):
            raise BadInput("kind", "请选择要查看的记录类别")
        after = _read_cursor(cursor) if cursor else None
        async with self._sessions.begin() as s:
            opened = await self._open(s, caller, archive_id, kind or "records")
            records = await self._records(s, opened)
            self._read(s, caller, opened, kind or "records")
        chosen = [r for r in records if kind is None or SECTION_OF_KIND[r.kind].key == kind]
        if after is not None:
            chosen = [r for r in chosen if (r.date, r.id) < after]
        page = chosen[:PAGE_SIZE]
        more = len(chosen) > PAGE_SIZE
        return {
            "records": [_list_item(r) for r in page],
            "next_cursor": _cursor(page[-1]) if more else None,
        }

    async def record(self, caller: audit.Caller, record_id: str) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            archive_pk = await s.scalar(RECORD_BY_PUBLIC_ID, {"record": record_id}) if _opaque(record_id) else None
            opened = await self._open(s, caller, None, "record", archive_pk=archive_pk)
            found = [r for r in await self._records(s, opened) if r.id == record_id]
            if not found:  # restricted, a kind residents never see, or another archive's: not found
                self._refuse(s, caller, opened.pk, "record", "not_readable")
                await s.commit()
                raise NotFound()
            (record,) = found
            self._read(s, caller, opened, SECTION_OF_KIND[record.kind].key, record_pk=record.pk)
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
            self._read(s, caller, opened, "trends")
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
            self._read(s, caller, opened, "access_log")
        institution = opened.row.institution_code
        return {"id": opened.row.public_id, "entries": [_entry(r, relations, institution) for r in reads]}

    async def set_note(self, caller: audit.Caller, archive_id: str, note: object) -> dict[str, Any]:
        """The binder's private note on their binding (备注, e.g. 大宝), at most :data:`NOTE_MAX` characters."""
        text = note.strip() if isinstance(note, str) else None
        if text is None or len(text) > NOTE_MAX or any(not c.isprintable() for c in text):
            raise BadInput("note", f"备注最多 {NOTE_MAX} 个字，例如“大宝”")
        async with self._sessions.begin() as s:
            row = (await s.execute(BOUND_BY_PUBLIC_ID, {"me": caller.identity_id, "archive": archive_id})).first()
            if row is None or not _opaque(archive_id):
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
                self._read(s, caller, opened, "home")
                out[opened.row.public_id] |= {
                    "next_due": _next_due(records, today)[:1],
                    "latest": _list_item(records[0]) if records else None,
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
        elif archive_id is not None and _opaque(archive_id):
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
        if kind not in RESIDENT_KINDS or not _normal(sealed.get("label")):
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

    def _read(
        self, s: AsyncSession, caller: audit.Caller, opened: Opened, section: str, *, record_pk: int | None = None
    ) -> None:
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

    def _cover(self, opened: Opened, records: list[Record]) -> dict[str, Any]:
        row, fields, today = opened.row, opened.fields, opened.today
        birth = dt.date.fromisoformat(fields["birth_date"])
        counts: dict[str, int] = {}
        for r in records:
            key = SECTION_OF_KIND[r.kind].key
            counts[key] = counts.get(key, 0) + 1
        if self._basic_fields(opened):
            counts["basic"] = 1
        age = age_on(birth, today)
        tags = [label for p, label in KEY_GROUP_TAGS.items() if p in (fields.get("programmes") or ())]
        if age >= 65:
            tags.insert(0, "老年人")
        return {
            "id": row.public_id,
            "name": mask_name(fields.get("name"), self._policy),
            "note": self._note(row),
            "gender": _gender(fields.get("gender")),
            "age": age,
            "relation": row.relation,
            "relation_label": RELATION_LABELS.get(row.relation, "家人"),
            "institution": row.institution or "",
            "consult_phone": row.consult_phone or "",
            "doctor": fields.get("family_doctor") or "",
            "filed_on": fields.get("filed_on"),
            "tags": tags,
            "completeness": row.completeness,
            "next_due": _next_due(records, today),
            "sections": [
                {"key": s.key, "title": s.title, "count": counts[s.key]} for s in SECTIONS if counts.get(s.key)
            ],
        }

    def _basic_fields(self, opened: Opened) -> list[dict[str, str]]:
        """The 个人基本信息 a resident sees: masked identity fields, then the form's known fields."""
        f, policy = opened.fields, self._policy
        own = [
            ("姓名", mask_name(f.get("name"), policy)),
            ("性别", _gender(f.get("gender"))),
            ("年龄", f"{age_on(dt.date.fromisoformat(f['birth_date']), opened.today)}岁"),
            ("身份证号", mask_id_number(f.get("id_number"), policy) if f.get("id_number") else ""),
            ("本人电话", mask_phone(f.get("phone"), policy) if f.get("phone") else ""),
            ("联系人", mask_name(f.get("contact_name"), policy) if f.get("contact_name") else ""),
            ("联系人电话", mask_phone(f.get("contact_phone"), policy) if f.get("contact_phone") else ""),
            ("现住址", mask_address(f.get("address"), policy) if f.get("address") else ""),
            ("户籍地址", mask_address(f.get("household_address"), policy) if f.get("household_address") else ""),
            ("责任医生", f.get("family_doctor") or ""),
            ("建档日期", f.get("filed_on") or ""),
        ]
        out = [{"label": label, "value": value} for label, value in own if value]
        form = present_basic(redact_basic_info(f.get("basic_info"), policy))
        out += [{"label": x["label"], "value": x["text"]} for sec in form.sections for x in sec["fields"]]
        return out


# --------------------------------------------------------------------------- pure helpers


def _opaque(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 24 and value.replace("-", "").replace("_", "").isalnum()


def _normal(label: object) -> bool:
    """Only an ``N`` label reaches a resident; anything unreadable fails closed."""
    try:
        return Label.from_json(label).is_normal  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError):
        return False


def _gender(code: object) -> str:
    return {"1": "男", "2": "女"}.get(str(code), "未说明")


def _list_item(r: Record) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "title": r.title,
        "date": r.date.isoformat(),
        "institution": r.institution,
        "summary": present(r.kind, r.payload).summary,
        "next_due_date": r.next_due_date.isoformat() if r.next_due_date else None,
    }


def _next_due(records: list[Record], today: dt.date) -> list[dict[str, Any]]:
    """Per kind, the next due date its newest record gives, soonest first (overdue ones included)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:  # newest first: the first of each kind is its latest
        if r.kind in seen:
            continue
        seen[r.kind] = {}
        if r.next_due_date is not None:
            seen[r.kind] = {
                "kind": r.kind,
                "title": r.title,
                "date": r.next_due_date.isoformat(),
                "overdue": r.next_due_date < today,
            }
    return sorted((v for v in seen.values() if v), key=lambda v: v["date"])


def _cursor(r: Record) -> str:
    return base64.urlsafe_b64encode(f"{r.date.isoformat()}|{r.id}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[dt.date, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, _, record_id = raw.partition("|")
        return dt.date.fromisoformat(day), record_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInput("cursor", "翻页参数无效，请从第一页重新查看") from None


def _entry(read: Any, relations: Mapping[int, str], institution_code: str) -> dict[str, Any]:
    """One line of the access log. A family member is named by relation only; staff by whether
    they work at the archive's own institution. A read of anything a resident may not see (a
    section not in :data:`SECTION_TITLES`) is a plain "工作人员查阅档案": the log itself never
    hints at a sensitive programme."""
    at = read.at.isoformat()
    detail = read.detail or {}
    section = detail.get("section", "")
    if read.actor_type == "identity":
        relation = relations.get(int(read.actor_id)) if str(read.actor_id).isdigit() else None
        return {
            "at": at,
            "actor": READER_LABELS.get(relation or "", "曾绑定的家人"),
            "section": SECTION_TITLES.get(section, "档案"),
        }
    if section not in SECTION_TITLES:
        return {"at": at, "actor": "工作人员", "section": "工作人员查阅档案"}
    own = detail.get("institution_code") == institution_code
    return {
        "at": at,
        "actor": "建档机构工作人员" if own else "其他医疗卫生机构工作人员",
        "section": SECTION_TITLES[section],
    }


SECTION_TITLES = {
    **{s.key: s.title for s in SECTIONS},
    "cover": "档案首页",
    "records": "服务记录",
    "trends": "变化趋势",
    "access_log": "查阅记录",
    "home": "我的档案",
}
