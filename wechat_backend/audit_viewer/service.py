"""Reading the audit log, for county and city admins: scoped, filtered, newest first, a page at a
time (keyset on id) or streamed as CSV in chunks. Every look is itself audited (``audit_view``,
``audit_export``), with the filters in ``detail`` and the archive asked about in ``archive_id``.

Scope: a city admin sees every row. A county admin sees the rows about archives of their county,
the rows without an archive about their county (``detail.county``, e.g. ``county_set``) or about
a staff member of it (``detail.staff``, e.g. ``staff_disable``), and whatever staff of their county
did. An archive outside that scope is the same "no such archive" as one that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import open_fields
from ..clock import LOCAL_ZONE, Clock
from ..crypto import DecryptError, KeyRing
from ..db.models import Archive, AuditEvent, Identity, Institution, Staff
from ..errors import BadInput, Forbidden, NotFound
from ..staff.accounts import staff_aad
from ..staff.scope import StaffMember
from ..validators import InvalidValue, parse_archive_no
from .filters import (
    ACTION_LABELS,
    PER_PAGE,
    RESULT_LABELS,
    AuditFilters,
    action_label,
    local_time,
    looks_like_archive_no,
    parse_filters,
    reason_label,
)
from .lines import AuditLine, csv_text, detail_text

LOG = AuditEvent.__table__
CSV_CHUNK = 1000  # rows per query (and per flush) of an export
FORM_FIELDS = ("archive", "actor", "action", "from", "to")
NO_SUCH_ARCHIVE = "未找到这份档案，请核对健康档案编号（只能查看本县的档案）"


@dataclass(frozen=True)
class AuditPage:
    """What the audit page shows: the form as filled in, the rows, the links on."""

    form: dict[str, str]
    lines: list[AuditLine] = field(default_factory=list)
    next_query: str | None = None  # the next page's query string
    first_query: str | None = None  # the first page's, when this is not it
    csv_query: str = ""
    error: str | None = None
    status: int = 200
    actions: tuple[tuple[str, str], ...] = tuple(ACTION_LABELS.items())


@dataclass(frozen=True)
class AuditExport:
    filename: str
    chunks: AsyncIterator[str]  # CSV text: the BOM and header first


@dataclass(frozen=True)
class Looker:
    """Who is looking, with what the audit log keeps about the request."""

    member: StaffMember
    request_id: str | None = None
    client_ip: str | None = None


def scope_clause(member: StaffMember) -> ColumnElement[bool] | None:
    """The rows a member may see (None: all of them)."""
    if member.role == "city":
        return None
    if member.role != "county" or not member.county_code:
        raise Forbidden()  # the route's ability already says so; never widen by accident
    county = member.county_code
    county_staff = select(Staff.public_id).where(Staff.county_code == county)
    no_archive = LOG.c.archive_id.is_(None)
    return or_(
        LOG.c.archive_id.in_(select(Archive.id).where(Archive.county_code == county)),
        LOG.c.actor_id.in_(select(literal("staff:") + Staff.public_id).where(Staff.county_code == county)),
        and_(no_archive, LOG.c.detail["county"].as_string() == county),
        and_(no_archive, LOG.c.detail["staff"].as_string().in_(county_staff)),
    )


class AuditViewer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, clock: Clock) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock

    # ------------------------------------------------------------------ the page

    async def page(self, who: Looker, args: Mapping[str, str]) -> AuditPage:
        """One page of rows for the filters in ``args`` (a query string's first values)."""
        form = {k: (args.get(k) or "").strip() for k in FORM_FIELDS}
        try:
            filters = parse_filters(args)
        except BadInput as exc:
            return AuditPage(form, error=exc.message, status=400)
        async with self._sessions.begin() as s:
            found, archive_id = await self._archive(s, who.member, filters.archive)
            if not found:
                self._audit(s, who, "audit_view", None, filters, denied=True)
                return AuditPage(form, error=NO_SUCH_ARCHIVE, status=404)
            query = await self._query(s, who.member, filters, archive_id)
            rows = (await s.execute(query.limit(PER_PAGE + 1))).mappings().all()
            lines = await self._lines(s, rows[:PER_PAGE])
            self._audit(s, who, "audit_view", archive_id, filters)
        more = len(rows) > PER_PAGE
        return AuditPage(
            form,
            lines,
            next_query=filters.query(before=lines[-1].id) if more else None,
            first_query=filters.query(before=None) if filters.before else None,
            csv_query=filters.query(before=None),
        )

    async def submit(self, who: Looker, posted: Mapping[str, str]) -> str | AuditPage:
        """The filter form, posted. A 健康档案编号 typed into it is looked up (scope-checked) and
        replaced by the archive's public id, so that no number reaches a URL. Returns the query
        string to redirect to, or the page saying what is wrong."""
        form = {k: (posted.get(k) or "").strip() for k in FORM_FIELDS}
        values = dict(form)
        if looks_like_archive_no(form["archive"]):
            try:
                number = parse_archive_no(form["archive"])
            except InvalidValue as exc:
                return AuditPage(form, error=exc.message, status=400)
            public_id = await self._find_by_number(who, number)
            if public_id is None:
                return AuditPage(form, error=NO_SUCH_ARCHIVE, status=404)
            values["archive"] = public_id
        try:
            return parse_filters(values).query()
        except BadInput as exc:
            return AuditPage(form, error=exc.message, status=400)

    # ------------------------------------------------------------------ the export

    async def export(self, who: Looker, args: Mapping[str, str]) -> AuditExport:
        """Every row the filters select, as CSV chunks (the caller streams them). Bad filters →
        :class:`BadInput`; an archive not in scope → :class:`NotFound` (audited)."""
        filters = parse_filters(args)
        async with self._sessions.begin() as s:
            found, archive_id = await self._archive(s, who.member, filters.archive)
            # The rows as of now: not the export's own row, nor those written while it streams.
            newest = await s.scalar(select(func.max(LOG.c.id))) or 0
            self._audit(s, who, "audit_export", archive_id, filters, denied=not found)
        if not found:
            raise NotFound(NO_SUCH_ARCHIVE)
        day = self._clock.now().astimezone(LOCAL_ZONE).strftime("%Y%m%d")
        before = min(filters.before or newest + 1, newest + 1)
        return AuditExport(f"audit-{day}.csv", self._chunks(who.member, filters, archive_id, before))

    async def _chunks(
        self, member: StaffMember, filters: AuditFilters, archive_id: int | None, before: int
    ) -> AsyncIterator[str]:
        first = True
        while True:
            async with self._sessions() as s:  # one short session per chunk: nothing held while the client reads
                query = await self._query(s, member, filters, archive_id, before=before)
                rows = (await s.execute(query.limit(CSV_CHUNK))).mappings().all()
                lines = await self._lines(s, rows)
            yield csv_text(lines, header=first)
            first = False
            if len(rows) < CSV_CHUNK:
                return
            before = rows[-1]["id"]

    # ------------------------------------------------------------------ queries

    async def _archive(self, s: AsyncSession, member: StaffMember, public_id: str | None) -> tuple[bool, int | None]:
        """(found, archive id) of the archive filter; not found when it is outside the scope."""
        if public_id is None:
            return True, None
        row = (await s.execute(select(Archive.id, Archive.county_code).where(Archive.public_id == public_id))).first()
        if row is None or (member.role != "city" and row.county_code != member.county_code):
            return False, None
        return True, row.id

    async def _find_by_number(self, who: Looker, number: str) -> str | None:
        """The public id of the archive with this number, in the member's scope; a miss is audited
        (without the number)."""
        bidx = self._keys.blind_index("archive_no", number)
        async with self._sessions.begin() as s:
            # Every row of the index slot: a truncated blind index is shared by design.
            candidates = (await s.scalars(select(Archive).where(Archive.archive_no_bidx == bidx))).all()
            row = next((a for a in candidates if open_fields(self._keys, a).get("archive_no") == number), None)
            if row is not None and (who.member.role == "city" or row.county_code == who.member.county_code):
                return row.public_id
            self._audit(s, who, "audit_view", None, AuditFilters(), denied=True, by="archive_no")
        return None

    async def _query(
        self,
        s: AsyncSession,
        member: StaffMember,
        filters: AuditFilters,
        archive_id: int | None,
        *,
        before: int | None = None,
    ) -> Select[Any]:
        conds: list[ColumnElement[bool]] = []
        scope = scope_clause(member)
        if scope is not None:
            conds.append(scope)
        if archive_id is not None:
            conds.append(LOG.c.archive_id == archive_id)
        if filters.actor is not None:
            conds.append(await self._actor_clause(s, filters))
        if filters.action:
            conds.append(LOG.c.action == filters.action)
        start, end = filters.utc_range()
        if start is not None:
            conds.append(LOG.c.at >= start)
        if end is not None:
            conds.append(LOG.c.at < end)
        before = before if before is not None else filters.before
        if before is not None:
            conds.append(LOG.c.id < before)
        return select(LOG).where(*conds).order_by(LOG.c.id.desc())

    async def _actor_clause(self, s: AsyncSession, filters: AuditFilters) -> ColumnElement[bool]:
        actor = filters.actor
        assert actor is not None
        if actor.kind == "staff":
            return LOG.c.actor_id == f"staff:{actor.id}"
        if actor.kind == "identity":
            # Rows name an identity by its key; the viewer, by its public id.
            found = await s.scalar(select(Identity.id).where(Identity.public_id == actor.id))
            if found is None:
                return false()
            return and_(LOG.c.actor_type == "identity", LOG.c.actor_id == str(found))
        if actor.id:
            return and_(LOG.c.actor_type == "system", LOG.c.actor_id == actor.id)
        return LOG.c.actor_type == "system"

    # ------------------------------------------------------------------ rows as shown

    async def _lines(self, s: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> list[AuditLine]:
        rows = list(rows)
        archives = await self._archives(s, {r["archive_id"] for r in rows if r["archive_id"] is not None})
        identities = await self._identities(s, rows)
        staff = await self._staff_names(s, rows)
        return [self._line(r, archives, identities, staff) for r in rows]

    def _line(
        self,
        row: Mapping[str, Any],
        archives: dict[int, tuple[str, str | None]],
        identities: dict[str, str],
        staff: dict[str, str],
    ) -> AuditLine:
        actor, actor_filter = _actor_text(row["actor_type"], row["actor_id"], identities, staff)
        archive = archives.get(row["archive_id"]) if row["archive_id"] is not None else None
        return AuditLine(
            id=row["id"],
            at=local_time(row["at"]),
            actor=actor,
            actor_filter=actor_filter,
            action=row["action"],
            action_label=action_label(row["action"]),
            archive=archive[0] if archive else None,
            archive_gone=row["archive_id"] is not None and archive is None,
            institution=archive[1] if archive else None,
            result=RESULT_LABELS.get(row["result"], row["result"]),
            reason=self._reason(row),
            detail=detail_text(row["detail"]),
            request_id=row["request_id"],
            client_ip=row["client_ip"],
        )

    def _reason(self, row: Mapping[str, Any]) -> str:
        try:
            return reason_label(audit.reason_of(row, self._keys))
        except (DecryptError, KeyError):  # its key is no longer configured
            return "（原因已加密，所用密钥已不在配置中）"

    async def _archives(self, s: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str | None]]:
        if not ids:
            return {}
        query = (
            select(Archive.id, Archive.public_id, Institution.name)
            .outerjoin(Institution, Institution.code == Archive.institution_code)
            .where(Archive.id.in_(ids))
        )
        return {r.id: (r.public_id, r.name) for r in (await s.execute(query)).all()}

    async def _identities(self, s: AsyncSession, rows: list[Mapping[str, Any]]) -> dict[str, str]:
        keys = {
            int(r["actor_id"])
            for r in rows
            if r["actor_type"] == "identity" and r["actor_id"] and r["actor_id"].isdigit()
        }
        if not keys:
            return {}
        found = (await s.execute(select(Identity.id, Identity.public_id).where(Identity.id.in_(keys)))).all()
        return {str(r.id): r.public_id for r in found}

    async def _staff_names(self, s: AsyncSession, rows: list[Mapping[str, Any]]) -> dict[str, str]:
        ids = {r["actor_id"][6:] for r in rows if (r["actor_id"] or "").startswith("staff:")}
        if not ids:
            return {}
        found = (await s.execute(select(Staff.public_id, Staff.sealed).where(Staff.public_id.in_(ids)))).all()
        names = {}
        for r in found:
            try:
                names[r.public_id] = self._keys.open(r.sealed, staff_aad(r.public_id)).get("name", "")
            except (DecryptError, KeyError):
                names[r.public_id] = ""
        return names

    # ------------------------------------------------------------------ the viewer's own trail

    def _audit(
        self,
        s: AsyncSession,
        who: Looker,
        action: str,
        archive_id: int | None,
        filters: AuditFilters,
        *,
        denied: bool = False,
        by: str | None = None,
    ) -> None:
        detail = filters.detail() | ({"by": by} if by else {})
        if filters.archive is not None and archive_id is None:
            detail["archive"] = "not_found"  # which archive was asked for is not kept when it is not theirs
        audit.record(
            s,
            actor_type="staff",
            actor_id=who.member.actor_id,
            action=action,
            archive_id=archive_id,
            result="denied" if denied else "ok",
            reason="not_found" if denied else None,
            request_id=who.request_id,
            client_ip=who.client_ip,
            detail=detail or None,
        )


def _actor_text(
    actor_type: str, actor_id: str | None, identities: dict[str, str], staff: dict[str, str]
) -> tuple[str, str | None]:
    """(how the actor is shown, the actor filter that selects their rows)."""
    if actor_id and actor_id.startswith("staff:"):
        public_id = actor_id[6:]
        name = staff.get(public_id)
        return (f"{name}（{actor_id}）" if name else actor_id), actor_id
    if actor_type == "identity":
        public_id = identities.get(actor_id or "")
        return (f"居民 identity:{public_id}", f"identity:{public_id}") if public_id else ("居民（已注销）", None)
    if actor_type == "system":
        return (f"系统（{actor_id}）" if actor_id else "系统"), f"system:{actor_id}" if actor_id else "system"
    return f"{actor_type}:{actor_id}", None
