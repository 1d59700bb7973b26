"""Reading an archive row for a resident: decrypt its personal fields, decide whether its owner may
see it now (``privacy.visibility``), and the masked summary a resident's screen shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from .config import PrivacySettings
from .crypto import KeyRing
from .db.models import Archive, County, Institution
from .privacy import Decision, VisibilityInput, age_on, mask_id_number, mask_name, mask_phone, visibility


class ArchiveLike(Protocol):
    """An ``Archive`` row, or a Core row of the columns :func:`with_place` selects."""

    id: int
    public_id: str
    upstream_id: str
    sealed: bytes
    status: str
    open_to_resident: bool
    open_override: bool | None


def opened(open_override: bool | None, open_to_resident: bool) -> bool:
    """是否开放给居民 as every reader takes it: the staff's local decision when there is one, else the
    upstream's flag. An import writes only ``open_to_resident``, so a local decision stands until
    staff set it back to 跟随上游 (None). SQL says the same: ``stats.tally.opened_clause``."""
    return open_to_resident if open_override is None else open_override


def open_fields(keys: KeyRing, archive: ArchiveLike) -> dict[str, Any]:
    return keys.open(archive.sealed, f"archive:{archive.upstream_id}")


@dataclass(frozen=True)
class Place:
    """The archive's county switch and its institution's name and consultation phone."""

    county_open: bool
    phase: str
    institution: str
    consult_phone: str


CLOSED = Place(county_open=False, phase="key_populations", institution="", consult_phone="")
"""The place of an archive whose county has no row: closed."""


async def place_of(s: AsyncSession, archive: Archive) -> Place:
    """One query: the county's switch and phase, and the institution's name and phone."""
    row = (
        await s.execute(
            select(
                County.opening.label("county_open"),
                County.phase,
                Institution.name.label("institution"),
                Institution.consult_phone,
            )
            .select_from(County)
            .outerjoin(Institution, Institution.code == archive.institution_code)
            .where(County.code == archive.county_code)
        )
    ).first()
    return place_from(row) if row is not None else CLOSED


def with_place(*extra: ColumnElement[Any]) -> Select[Any]:
    """The archive columns a resident's answers need, with its county switch and institution, in
    one query (outer joins: an archive whose county has no row reads as closed). Build it once, at
    import: the hot paths run prebuilt statements."""
    a, c, i = Archive.__table__.c, County.__table__.c, Institution.__table__.c
    return (
        select(
            a.id,
            a.public_id,
            a.upstream_id,
            a.sealed,
            a.status,
            a.open_to_resident,
            a.open_override,
            c.opening.label("county_open"),
            c.phase,
            i.name.label("institution"),
            i.consult_phone,
            *extra,
        )
        .select_from(Archive.__table__)
        .outerjoin(County.__table__, c.code == a.county_code)
        .outerjoin(Institution.__table__, i.code == a.institution_code)
    )


def place_from(row: Any) -> Place:
    """The :class:`Place` of a row selected by :func:`with_place`."""
    if row.county_open is None:
        return CLOSED
    return Place(
        county_open=bool(row.county_open),
        phase=row.phase,
        institution=row.institution or "",
        consult_phone=row.consult_phone or "",
    )


def decide(archive: ArchiveLike, fields: Mapping[str, Any], place: Place, today: dt.date) -> Decision:
    return visibility(
        VisibilityInput(
            county_open=place.county_open,
            phase=place.phase,
            open_to_resident=opened(archive.open_override, archive.open_to_resident),
            status=archive.status,
            birth_date=dt.date.fromisoformat(fields["birth_date"]),
            programmes=frozenset(fields.get("programmes") or ()),
            today=today,
        )
    )


def summary(
    archive: ArchiveLike,
    fields: Mapping[str, Any],
    place: Place,
    decision: Decision,
    today: dt.date,
    policy: PrivacySettings,
) -> dict[str, Any]:
    """What a bound resident sees in the archive list: masked, and nothing medical."""
    birth = dt.date.fromisoformat(fields["birth_date"])
    out: dict[str, Any] = {
        "id": archive.public_id,
        "name": mask_name(fields.get("name"), policy),
        "id_number": mask_id_number(fields.get("id_number"), policy) if fields.get("id_number") else None,
        "gender": {"1": "男", "2": "女"}.get(str(fields.get("gender")), "未知"),
        "age": age_on(birth, today),
        "institution": place.institution,
        "consult_phone": place.consult_phone,
        "open": decision.visible,
    }
    if decision.visible:
        out["phone"] = mask_phone(fields.get("phone"), policy) if fields.get("phone") else None
    else:
        out["message"] = not_open_message(place)
    return out


def not_open_message(place: Place) -> str:
    """The same words whatever the reason (the precise reason is for staff)."""
    where = place.institution or "建档机构"
    phone = f"（电话 {place.consult_phone}）" if place.consult_phone else ""
    return f"暂未开放自助查询，请咨询{where}{phone}"
