"""The ``feedback`` table's queries. They take a session and never commit (the service's method
is the transaction). A staff member's inbox is filtered in SQL by :func:`in_scope`, which says the
same as ``staff.scope.covers`` for one row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from ..binding.person import PERSON_IDS
from ..db.models import Archive, Binding, County, Feedback, Identity, Institution
from ..staff.scope import StaffMember
from .routing import BoundArchive
from .routing import Institution as Place

FEEDBACK = Feedback.__table__
ARCHIVES = Archive.__table__
BINDINGS = Binding.__table__
IDENTITIES = Identity.__table__
INSTITUTIONS = Institution.__table__
COUNTIES = County.__table__

# The archives the person behind ``me`` bound (either channel), first bound first.
BOUND = (
    select(
        ARCHIVES.c.id, ARCHIVES.c.public_id, ARCHIVES.c.county_code, ARCHIVES.c.institution_code, BINDINGS.c.relation
    )
    .join(BINDINGS, BINDINGS.c.archive_id == ARCHIVES.c.id)
    .where(BINDINGS.c.identity_id.in_(PERSON_IDS))
    .order_by(BINDINGS.c.created_at, BINDINGS.c.id)
)
SCENE = (
    select(INSTITUTIONS.c.code, INSTITUTIONS.c.county_code)
    .join(IDENTITIES, IDENTITIES.c.scene_institution_code == INSTITUTIONS.c.code)
    .where(IDENTITIES.c.id == bindparam("identity"))
)
INSTITUTION = select(INSTITUTIONS.c.name, INSTITUTIONS.c.consult_phone).where(INSTITUTIONS.c.code == bindparam("code"))

# A question with where it went and who asked (the identity's opaque id, never a name).
_ROWS = (
    select(
        FEEDBACK.c.id,
        FEEDBACK.c.public_id,
        FEEDBACK.c.identity_id,
        FEEDBACK.c.archive_id,
        FEEDBACK.c.county_code,
        FEEDBACK.c.institution_code,
        FEEDBACK.c.route,
        FEEDBACK.c.channel,
        FEEDBACK.c.status,
        FEEDBACK.c.created_at,
        FEEDBACK.c.replied_at,
        FEEDBACK.c.replied_by,
        FEEDBACK.c.delivery,
        INSTITUTIONS.c.name.label("institution"),
        INSTITUTIONS.c.consult_phone,
        COUNTIES.c.name.label("county"),
        IDENTITIES.c.public_id.label("asker"),
    )
    .select_from(FEEDBACK)
    .join(IDENTITIES, IDENTITIES.c.id == FEEDBACK.c.identity_id)
    .outerjoin(INSTITUTIONS, INSTITUTIONS.c.code == FEEDBACK.c.institution_code)
    .outerjoin(COUNTIES, COUNTIES.c.code == FEEDBACK.c.county_code)
)
ONE = _ROWS.add_columns(FEEDBACK.c.sealed, FEEDBACK.c.key_id).where(FEEDBACK.c.public_id == bindparam("feedback"))
MINE = (
    _ROWS.add_columns(FEEDBACK.c.sealed)
    .where(FEEDBACK.c.identity_id == bindparam("identity"))
    .order_by(FEEDBACK.c.created_at.desc(), FEEDBACK.c.id.desc())
    .limit(bindparam("limit"))
)


async def bound_archives(s: AsyncSession, identity_id: int) -> list[BoundArchive]:
    seen: dict[int, BoundArchive] = {}
    for row in (await s.execute(BOUND, {"me": identity_id})).all():
        seen.setdefault(
            row.id, BoundArchive(row.id, row.county_code, row.institution_code, row.relation, row.public_id)
        )
    return list(seen.values())


async def scene_of(s: AsyncSession, identity_id: int) -> Place | None:
    """The institution whose QR code the identity followed through, if it is known."""
    row = (await s.execute(SCENE, {"identity": identity_id})).first()
    return Place(row.code, row.county_code) if row else None


async def institution(s: AsyncSession, code: str) -> Any:
    """(name, consult_phone) of an institution, or None."""
    return (await s.execute(INSTITUTION, {"code": code})).first()


async def one(s: AsyncSession, public_id: str, *, lock: bool = False) -> Any:
    stmt: Select[Any] = ONE.with_for_update(of=FEEDBACK) if lock else ONE
    return (await s.execute(stmt, {"feedback": public_id})).first()


async def mine(s: AsyncSession, identity_id: int, limit: int) -> list[Any]:
    return list((await s.execute(MINE, {"identity": identity_id, "limit": limit})).all())


def in_scope(member: StaffMember) -> ColumnElement[bool]:
    """The questions a staff member may see: city — all (the city's inbox too); county — those of
    their county; institution — those of their institution."""
    if member.role == "city":
        return true()
    if member.role == "county":
        return FEEDBACK.c.county_code == member.county_code if member.county_code else false()
    return FEEDBACK.c.institution_code == member.institution_code if member.institution_code else false()


def _status_clause(status: str) -> ColumnElement[bool]:
    return FEEDBACK.c.status == status if status in ("open", "answered") else true()


async def inbox_rows(s: AsyncSession, member: StaffMember, status: str, limit: int, offset: int) -> list[Any]:
    stmt = (
        _ROWS.where(in_scope(member), _status_clause(status))
        .order_by(FEEDBACK.c.created_at.desc(), FEEDBACK.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await s.execute(stmt)).all())


async def inbox_counts(s: AsyncSession, member: StaffMember, overdue_before: dt.datetime) -> dict[str, int]:
    """``open``, ``answered`` and ``overdue`` (open and asked before ``overdue_before``)."""
    by_status = (
        await s.execute(select(FEEDBACK.c.status, func.count()).where(in_scope(member)).group_by(FEEDBACK.c.status))
    ).all()
    overdue = await s.scalar(
        select(func.count())
        .select_from(FEEDBACK)
        .where(in_scope(member), FEEDBACK.c.status == "open", FEEDBACK.c.created_at < overdue_before)
    )
    counts = {status: int(n) for status, n in by_status}
    return {"open": counts.get("open", 0), "answered": counts.get("answered", 0), "overdue": int(overdue or 0)}
