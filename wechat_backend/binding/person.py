"""The person behind an identity: the identity itself and the same person's identity on the other
channel (official account / mini-program, linked by unionid). Caps and allowances count per person.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import CTE, and_, bindparam, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Binding, Consent, Identity

IDENTITIES = Identity.__table__


# Statements are built once, with bind parameters (``me``: the caller's identity id): building
# and keying a statement costs more CPU than running it on the hot paths.


def _person() -> CTE:
    unionid = select(IDENTITIES.c.unionid).where(IDENTITIES.c.id == bindparam("me")).scalar_subquery()
    return (
        select(IDENTITIES.c.id)
        .where(
            or_(
                IDENTITIES.c.id == bindparam("me"),
                and_(IDENTITIES.c.unionid.is_not(None), IDENTITIES.c.unionid == unionid),
            )
        )
        .cte("person")
    )


PERSON = _person()
"""A CTE of the person's identity ids (column ``id``), for ``me``."""
PERSON_IDS = select(PERSON.c.id)

_CALLER_STATE = union_all(
    select(literal("person").label("kind"), PERSON.c.id.label("value")),
    select(literal("consent"), Consent.__table__.c.identity_id).where(
        Consent.__table__.c.identity_id == bindparam("me"), Consent.__table__.c.version == bindparam("version")
    ),
    select(literal("bound"), Binding.__table__.c.archive_id).where(Binding.__table__.c.identity_id.in_(PERSON_IDS)),
)


async def person_identity_ids(s: AsyncSession, identity_id: int) -> list[int]:
    """The identity and those of the same person on the other channel (same unionid), in one query."""
    ids = (await s.scalars(PERSON_IDS, {"me": identity_id})).all()
    return sorted(set(ids) | {identity_id})


@dataclass(frozen=True)
class CallerState:
    """What a bind start checks about the caller before looking anything up."""

    identity_ids: list[int]  # the person's identities, in id order
    consented: bool  # this identity agreed to the current notice
    bound: frozenset[int]  # archives bound by any of the person's identities

    @property
    def person_key(self) -> int:
        """One id for the whole person (the per-person allowance)."""
        return self.identity_ids[0]


async def caller_state(s: AsyncSession, identity_id: int, notice_version: str) -> CallerState:
    """The person's identities, this identity's consent and the person's bound archives — one query
    (a tagged UNION ALL: ``kind`` says which of the three each row answers)."""
    rows = (await s.execute(_CALLER_STATE, {"me": identity_id, "version": notice_version})).all()
    ids = {identity_id} | {v for k, v in rows if k == "person"}
    return CallerState(
        identity_ids=sorted(ids),
        consented=any(k == "consent" for k, _ in rows),
        bound=frozenset(v for k, v in rows if k == "bound"),
    )
