"""What a person has bound: the archive list, the owner's view of who else is bound, unbinding.

Every archive shown is read through :func:`~wechat_backend.archives.decide` again (a county may
have closed since), every read is audited, and ids in URLs are opaque and checked against the
caller's own bindings — someone else's id is simply not found.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import decide, open_fields, place_from, summary, with_place
from ..clock import Clock
from ..config import PrivacySettings
from ..crypto import KeyRing
from ..db.models import Archive, Binding, Identity
from ..errors import NotFound
from ..stats.tally import bound_moved
from .person import PERSON_IDS, person_identity_ids
from .rules import RELATION_LABELS, owner_may_remove, owner_relations
from .service import Caller, archive_owner_relations

BINDINGS = Binding.__table__
ARCHIVES = Archive.__table__

# Built once (see person.py). ``me``: the caller's identity id.
_LISTED = (
    with_place(BINDINGS.c.public_id.label("binding_id"), BINDINGS.c.relation)
    .join(BINDINGS, BINDINGS.c.archive_id == ARCHIVES.c.id)
    .where(BINDINGS.c.identity_id.in_(PERSON_IDS))
    .order_by(BINDINGS.c.created_at, BINDINGS.c.id)
)
LIST = _LISTED
LIST_ONE = _LISTED.where(ARCHIVES.c.public_id == bindparam("archive"))
BINDING_OF = select(
    BINDINGS.c.id,
    BINDINGS.c.archive_id,
    BINDINGS.c.relation,
    BINDINGS.c.identity_id.in_(PERSON_IDS).label("mine"),
).where(BINDINGS.c.public_id == bindparam("binding"))
DELETE_BINDING = delete(BINDINGS).where(BINDINGS.c.id == bindparam("id"))
# The archive's row lock (as a bind takes it): a bind and an unbind of one archive, or two unbinds,
# take turns, so exactly one of them sees its last binding go (the statistics' ``bound``).
LOCK_ARCHIVE = select(ARCHIVES.c.id).where(ARCHIVES.c.id == bindparam("archive")).with_for_update(key_share=True)
ANY_LEFT = select(BINDINGS.c.id).where(BINDINGS.c.archive_id == bindparam("archive")).limit(1)


class BoundArchives:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        policy: PrivacySettings,
        clock: Clock,
        *,
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions  # the list: one SELECT and its audit rows
        self._keys = keyring
        self._policy = policy
        self._clock = clock

    async def list(self, caller: Caller, *, only: str | None = None) -> list[dict[str, Any]]:
        """The caller's archives (and those bound through the same person's other channel)."""
        today = self._clock.today()
        out = []
        query, params = (
            (LIST_ONE, {"me": caller.identity_id, "archive": only}) if only else (LIST, {"me": caller.identity_id})
        )
        async with self._reads.begin() as s:
            seen: set[int] = set()
            for row in (await s.execute(query, params)).all():
                if row.id in seen:
                    continue
                seen.add(row.id)
                fields = open_fields(self._keys, row)
                place = place_from(row)
                decision = decide(row, fields, place, today)
                item = summary(row, fields, place, decision, today, self._policy)
                item.update(
                    binding_id=row.binding_id,
                    relation=row.relation,
                    relation_label=RELATION_LABELS.get(row.relation, "家人"),
                    owner=row.relation in owner_relations(_birth(fields), today),
                )
                out.append(item)
                audit.by_identity(s, caller, "archive_list", row.id, reason=_reason(decision.reason))
        return out

    async def get(self, caller: Caller, archive_public_id: str) -> dict[str, Any]:
        """One of the caller's archives (its summary); anyone else's is not found."""
        items = [a for a in await self.list(caller, only=archive_public_id) if a["id"] == archive_public_id]
        if not items:
            async with self._sessions.begin() as s:
                audit.by_identity(s, caller, "archive_read", result="denied", reason="not_bound")
            raise NotFound("未找到这份档案，请从“我的档案”进入")
        return items[0]

    async def bindings_of(self, caller: Caller, archive_public_id: str) -> list[dict[str, Any]]:
        """Every identity bound to an archive — only for its owners (``rules.owner_relations``)."""
        async with self._sessions.begin() as s:
            archive, owners = await self._owned(s, caller, archive_public_id)
            rows = (
                await s.execute(
                    select(Binding, Identity.channel)
                    .join(Identity, Identity.id == Binding.identity_id)
                    .where(Binding.archive_id == archive.id)
                    .order_by(Binding.created_at, Binding.id)
                )
            ).all()
            mine = set(await person_identity_ids(s, caller.identity_id))
            audit.by_identity(s, caller, "bindings_read", archive.id)
            return [
                {
                    "id": b.public_id,
                    "relation": b.relation,
                    "relation_label": RELATION_LABELS.get(b.relation, "家人"),
                    "channel": "公众号" if channel == "oa" else "小程序",
                    "bound_at": b.created_at.isoformat(),
                    "is_me": b.identity_id in mine,
                    # Another owner's binding cannot be removed (see unbind).
                    "removable": b.identity_id not in mine and owner_may_remove(b.relation, owners),
                    "owner": b.relation in owners,
                }
                for b, channel in rows
            ]

    async def unbind(self, caller: Caller, binding_public_id: str) -> None:
        """Anyone may remove their own binding; the archive's owner may remove any on it."""
        async with self._sessions.begin() as s:
            binding = (await s.execute(BINDING_OF, {"me": caller.identity_id, "binding": binding_public_id})).first()
            mine = binding is not None and bool(binding.mine)
            # One's own binding, or — for an owner — someone else's, but never another owner's.
            allowed = binding is not None and (mine or await self._may_remove(s, caller, binding))
            if binding is None or not allowed:
                audit.by_identity(
                    s, caller, "unbind", binding.archive_id if binding else None, result="denied", reason="not_found"
                )
                await s.commit()
                raise NotFound("未找到这个绑定")
            await s.execute(LOCK_ARCHIVE, {"archive": binding.archive_id})
            removed = (await s.execute(DELETE_BINDING, {"id": binding.id})).rowcount
            if removed and await s.scalar(ANY_LEFT, {"archive": binding.archive_id}) is None:
                await bound_moved(s, binding.archive_id, -1)
            audit.by_identity(
                s, caller, "unbind", binding.archive_id, detail={"relation": binding.relation, "by_owner": not mine}
            )

    async def _may_remove(self, s: AsyncSession, caller: Caller, binding: Any) -> bool:
        owners = await archive_owner_relations(s, self._keys, binding.archive_id, self._clock.today())
        if not owner_may_remove(binding.relation, owners):
            return False
        return await self._owns(s, await person_identity_ids(s, caller.identity_id), binding.archive_id, owners)

    async def _owns(
        self, s: AsyncSession, identity_ids: list[int], archive_id: int, relations: tuple[str, ...] | None = None
    ) -> bool:
        if relations is None:
            relations = await archive_owner_relations(s, self._keys, archive_id, self._clock.today())
        row = await s.scalar(
            select(Binding.id).where(
                Binding.archive_id == archive_id, Binding.identity_id.in_(identity_ids), Binding.relation.in_(relations)
            )
        )
        return row is not None

    async def _owned(self, s: AsyncSession, caller: Caller, archive_public_id: str) -> tuple[Archive, tuple[str, ...]]:
        """The archive, if the caller owns it, with the relations that own it."""
        mine = await person_identity_ids(s, caller.identity_id)
        archive = (await s.scalars(select(Archive).where(Archive.public_id == archive_public_id))).first()
        owners = owner_relations(_birth(open_fields(self._keys, archive)), self._clock.today()) if archive else ()
        if archive is None or not await self._owns(s, mine, archive.id, owners):
            audit.by_identity(
                s, caller, "bindings_read", archive.id if archive else None, result="denied", reason="not_owner"
            )
            await s.commit()
            raise NotFound("未找到这份档案，或您不是档案本人")
        return archive, owners


def _reason(decision_reason: str) -> str | None:
    return None if decision_reason == "ok" else decision_reason


def _birth(fields: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(fields["birth_date"])
