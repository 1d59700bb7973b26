"""Opening archives on the 工作台: find an archive, see whether its owner can read it now (and the
precise reason when not), and decide 是否开放给居民 locally.

**How the two sources of 是否开放给居民 combine.** The upstream system's flag
(``archives.open_to_resident``) is written by every import; the staff's local decision
(``open_override``: True 开放, False 关闭, None 跟随上游) is written only here. What counts is the
local decision when there is one, else the upstream's flag (:func:`wechat_backend.archives.opened`;
in SQL ``stats.tally.opened_clause``). An import never writes ``open_override``, so a later import
does not undo a local decision whatever flag it carries; staff hand the archive back to the
upstream with 跟随上游. The other conditions (county switch, status, sensitive programmes, rollout
phase) still apply on top, at every read.

Scope: institution staff find only their institution's archives, county admins their county's. The
scope is part of the query, so an archive outside it is never decrypted and answers exactly as an
archive that does not exist. Every lookup and every view is an audited read; the typed values are
never logged or audited (only which kind of key was used).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import decide, open_fields, opened, place_of
from ..binding.rules import names_match
from ..blind_index import name_birth
from ..clock import Clock
from ..config import PrivacySettings
from ..crypto import DecryptError, KeyRing
from ..db.models import Archive, Staff
from ..errors import BadInput, Forbidden, NotFound
from ..privacy import mask_id_number
from ..stats import tally
from ..validators import InvalidValue, parse_archive_no, parse_date, parse_id_number, parse_name
from .accounts import staff_aad
from .scope import StaffMember, covers, may

log = logging.getLogger("wechat_backend.staff")

# The search keys, in the order the form is read: the first one filled in is used.
KEYS = ("archive_no", "id_number", "name_birth")
DECISIONS = {"open": True, "close": False, "follow": None}  # 开放 / 关闭 / 跟随上游


@dataclass(frozen=True)
class StaffCall:
    """Who acts, with what the audit log keeps about the request."""

    member: StaffMember
    request_id: str | None = None
    client_ip: str | None = None


def record(call: StaffCall, s: AsyncSession, action: str, **kw: Any) -> None:
    audit.record(
        s,
        actor_type="staff",
        actor_id=call.member.actor_id,
        action=action,
        request_id=call.request_id,
        client_ip=call.client_ip,
        **kw,
    )


def in_scope(member: StaffMember) -> ColumnElement[bool]:
    """The archives a member may open, as SQL (the same rule as ``scope.covers``)."""
    if member.role == "institution" and member.institution_code:
        return Archive.institution_code == member.institution_code
    if member.role == "county" and member.county_code:
        return Archive.county_code == member.county_code
    return false()


@dataclass(frozen=True)
class Query:
    """A parsed search: the key used, the blind-index column and value, and the exact test."""

    key: str
    column: Any
    purpose: str
    value: str
    typed: Mapping[str, str]

    def matches(self, fields: Mapping[str, Any]) -> bool:
        if self.key == "name_birth":
            return fields.get("birth_date") == self.typed["birth_date"] and names_match(
                self.typed["name"], fields.get("name")
            )
        return fields.get(self.key) == self.value


def parse_query(form: Mapping[str, str], today: dt.date) -> Query:
    """The first key filled in (档案编号, 身份证号, 姓名 + 出生日期), checked; BadInput otherwise."""
    text = {k: (form.get(k) or "").strip() for k in ("archive_no", "id_number", "name", "birth_date")}
    try:
        if text["archive_no"]:
            no = parse_archive_no(text["archive_no"])
            return Query("archive_no", Archive.archive_no_bidx, "archive_no", no, {})
        if text["id_number"]:
            number = parse_id_number(text["id_number"], today=today)
            return Query("id_number", Archive.id_bidx, "id_number", number, {})
        if text["name"] or text["birth_date"]:
            if not text["name"]:
                raise InvalidValue("name", "按姓名查找时请同时填写姓名和出生日期")
            if not text["birth_date"]:
                raise InvalidValue("birth_date", "按姓名查找时请同时填写姓名和出生日期")
            name = parse_name(text["name"])
            birth = parse_date(text["birth_date"], field="birth_date").isoformat()
            value = name_birth(name, birth) or ""
            return Query(
                "name_birth", Archive.name_birth_bidx, "name_birth", value, {"name": name, "birth_date": birth}
            )
    except InvalidValue as exc:
        raise BadInput(exc.field, exc.message) from None
    raise BadInput("archive_no", "请填写档案编号、身份证号，或姓名和出生日期中的一项")


@dataclass(frozen=True)
class Match:
    """One archive a search found (for the list when several share the key)."""

    public_id: str
    name: str
    birth_date: str
    archive_no: str
    institution_code: str
    status: str


@dataclass(frozen=True)
class ArchiveView:
    """What the archive page shows staff. ``override``: the local decision (None: 跟随上游);
    ``effective``: 是否开放给居民 as readers take it; ``visible``/``reason``: whether the owner can
    read it today and, if not, the first reason (``privacy.visibility.REASONS``)."""

    public_id: str
    name: str
    gender: str
    birth_date: str
    archive_no: str
    id_number: str | None  # masked
    county_code: str
    institution_code: str
    institution: str
    status: str
    completeness: int | None
    upstream: bool
    override: bool | None
    override_at: dt.datetime | None
    override_by: str | None
    effective: bool
    visible: bool
    reason: str


class ArchiveOpening:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, clock: Clock, privacy: PrivacySettings
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        self._privacy = privacy

    @staticmethod
    def _reader(call: StaffCall) -> dict[str, Any]:
        """What the resident's 查阅记录 says about a staff read: which kind of staff, of which
        institution, read the archive's cover (records/views.py access_entry)."""
        return {"section": "cover", "role": call.member.role, "institution_code": call.member.institution_code}

    async def find(self, call: StaffCall, form: Mapping[str, str]) -> list[Match]:
        """The archives in the caller's scope the key names (usually one; a name and birth date, or
        a 身份证号 with an old closed archive beside the new one, may name several). None → NotFound,
        the same whether no archive or only one outside the scope has that key."""
        require_opener(call.member)
        try:
            query = parse_query(form, self._clock.today())
        except BadInput as exc:
            async with self._sessions.begin() as s:
                detail = {"field": exc.extra.get("field")}
                record(call, s, "staff_archive_lookup", result="failed", reason="bad_input", detail=detail)
            raise
        bidx = self._keys.blind_index(query.purpose, query.value)
        found: list[Match] = []
        found_ids: list[int] = []
        async with self._sessions.begin() as s:
            # Every row of the index slot in scope: a truncated index is shared by design.
            rows = await s.scalars(
                select(Archive).where(query.column == bidx, in_scope(call.member)).order_by(Archive.id)
            )
            for row in rows:
                try:
                    fields = open_fields(self._keys, row)
                except DecryptError:  # sealed under a retired key: not findable until it is back
                    log.warning("staff lookup skipped an archive sealed under a key no longer configured")
                    continue
                if query.matches(fields):
                    found.append(_match(row, fields))
                    found_ids.append(row.id)
                    record(call, s, "staff_archive_lookup", archive_id=row.id, detail={"by": query.key})
            if len(found) > 1:
                # The list shows each match's name, birth date and number: a read of each archive,
                # in its resident's 查阅记录 (one match is read on its own page, audited there).
                for archive_pk in found_ids:
                    record(call, s, "staff_archive_view", archive_id=archive_pk, detail=self._reader(call))
            if not found:
                record(call, s, "staff_archive_lookup", result="denied", reason="not_found", detail={"by": query.key})
        if not found:
            raise NotFound("未找到相关档案。请核对后重试；只能查找本机构（县级管理员：本县）的档案")
        return found

    async def view(self, call: StaffCall, public_id: str) -> ArchiveView:
        """The archive page's content, audited as a read (``staff_archive_view``)."""
        require_opener(call.member)
        async with self._sessions.begin() as s:
            row = await _load(s, call.member, public_id)
            if row is None:
                record(call, s, "staff_archive_view", result="denied", reason="not_found")
            else:
                fields = open_fields(self._keys, row)
                place = await place_of(s, row)
                decision = decide(row, fields, place, self._clock.today())
                by = await self._staff_name(s, row.open_override_by)
                record(call, s, "staff_archive_view", archive_id=row.id, detail=self._reader(call))
        if row is None:
            raise NotFound()
        return ArchiveView(
            public_id=row.public_id,
            name=fields.get("name") or "",
            gender={"1": "男", "2": "女"}.get(str(fields.get("gender")), "未知"),
            birth_date=fields.get("birth_date") or "",
            archive_no=fields.get("archive_no") or "",
            id_number=mask_id_number(fields["id_number"], self._privacy) if fields.get("id_number") else None,
            county_code=row.county_code,
            institution_code=row.institution_code,
            institution=place.institution,
            status=row.status,
            completeness=row.completeness,
            upstream=row.open_to_resident,
            override=row.open_override,
            override_at=row.open_override_at,
            override_by=by,
            effective=opened(row.open_override, row.open_to_resident),
            visible=decision.visible,
            reason=decision.reason,
        )

    async def set_opening(self, call: StaffCall, public_id: str, decision: str) -> None:
        """开放 / 关闭 / 跟随上游 (``DECISIONS``): the local decision, audited, and the institution's
        figures recounted in the same transaction."""
        require_opener(call.member)
        if decision not in DECISIONS:
            raise BadInput("decision", "请选择开放、关闭或跟随上游")
        async with self._sessions.begin() as s:
            row = await _load(s, call.member, public_id, lock=True)
            if row is not None:
                row.open_override = DECISIONS[decision]
                row.open_override_at = self._clock.now()
                row.open_override_by = call.member.id
                await s.flush()
                record(call, s, "archive_open_set", archive_id=row.id, detail={"decision": decision})
                await tally.recount(s, [row.institution_code])
        if row is None:
            raise NotFound()

    async def _staff_name(self, s: AsyncSession, staff_id: int | None) -> str | None:
        if staff_id is None:
            return None
        staff = await s.get(Staff, staff_id)
        if staff is None:
            return None
        return self._keys.open(staff.sealed, staff_aad(staff.public_id)).get("name") or None


def require_opener(member: StaffMember) -> None:
    """Services check the ability too: a handler that forgot it still cannot open archives."""
    if not may(member, "open_archives"):
        raise Forbidden()


async def _load(s: AsyncSession, member: StaffMember, public_id: str, *, lock: bool = False) -> Archive | None:
    """The archive if it is in the member's scope; None for one outside it, as for none at all."""
    query = select(Archive).where(Archive.public_id == public_id)
    if lock:
        query = query.with_for_update()
    row = await s.scalar(query)
    return row if row is not None and covers(member, row.county_code, row.institution_code) else None


def _match(row: Archive, fields: Mapping[str, Any]) -> Match:
    return Match(
        public_id=row.public_id,
        name=fields.get("name") or "",
        birth_date=fields.get("birth_date") or "",
        archive_no=fields.get("archive_no") or "",
        institution_code=row.institution_code,
        status=row.status,
    )
