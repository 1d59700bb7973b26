"""县级参数 on the 工作台: the switch “个人档案是否显示健康档案开放给居民” and the rollout phase of
the counties a member may set (county admins their own county, city admins every county).

A change goes through :meth:`CountyService.set <wechat_backend.counties.CountyService.set>`, audited
as ``county_set`` by the staff member. Who changed a county last, and when, is read back from those
audit rows (the CLI's and the demo's included) rather than kept in a column of its own: the audit
log is already the record of every change. Rows older than ``[audit] retention_days`` are purged,
so a county untouched for longer shows no last change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..counties import PHASES, CountyService
from ..crypto import KeyRing
from ..db.models import AuditEvent, Staff
from ..errors import BadInput, Forbidden, NotFound
from .accounts import staff_aad
from .opening import StaffCall
from .scope import StaffMember, covers, may

SWITCH = {"on": True, "off": False}


@dataclass(frozen=True)
class LastChange:
    """Who changed a county last. ``actor_type`` staff (then ``name`` and ``role`` are theirs, when
    the account still exists) or system (``actor`` is ``cli`` or ``demo``)."""

    at: dt.datetime
    actor_type: str
    actor: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class CountySetting:
    code: str
    name: str
    opening: bool
    phase: str
    institutions: int
    archives: int
    last: LastChange | None


class CountySettings:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._counties = CountyService(sessions)

    async def list(self, member: StaffMember) -> list[CountySetting]:
        """The counties in the member's scope, by code, each with its last change."""
        _require(member)
        views = [c for c in await self._counties.list() if covers(member, c.code)]
        async with self._sessions() as s:
            last = await self._last_changes(s, [c.code for c in views])
        return [
            CountySetting(c.code, c.name, c.opening, c.phase, c.institutions, c.archives, last.get(c.code))
            for c in views
        ]

    async def set(self, call: StaffCall, code: str, opening: str, phase: str) -> None:
        """Set one county's switch (``on``/``off``) and phase; a county outside the scope is not found."""
        _require(call.member)
        if opening not in SWITCH:
            raise BadInput("opening", "请选择是否开放给居民")
        if phase not in PHASES:
            raise BadInput("phase", "请选择开放阶段：重点人群或全部居民")
        if not covers(call.member, code):
            raise NotFound()
        await self._counties.set(
            code, opening=SWITCH[opening], phase=phase, actor=call.member.actor_id, actor_type="staff"
        )

    async def _last_changes(self, s: AsyncSession, codes: Iterable[str]) -> dict[str, LastChange]:
        newest = select(AuditEvent.at, AuditEvent.actor_type, AuditEvent.actor_id).order_by(
            AuditEvent.at.desc(), AuditEvent.id.desc()
        )
        every = (await s.execute(newest.where(AuditEvent.action == "county_set_all").limit(1))).first()
        found: dict[str, LastChange] = {}
        for code in codes:
            one = (
                await s.execute(
                    newest.where(
                        AuditEvent.action == "county_set", AuditEvent.detail["county"].as_string() == code
                    ).limit(1)
                )
            ).first()
            row = max((r for r in (one, every) if r is not None), key=lambda r: r.at, default=None)
            if row is not None:
                found[code] = LastChange(row.at, row.actor_type, row.actor_id or "")
        return await self._with_names(s, found)

    async def _with_names(self, s: AsyncSession, found: dict[str, LastChange]) -> dict[str, LastChange]:
        ids = {c.actor.removeprefix("staff:") for c in found.values() if c.actor_type == "staff"}
        staff = (await s.scalars(select(Staff).where(Staff.public_id.in_(ids)))).all() if ids else []
        who = {
            m.public_id: (self._keys.open(m.sealed, staff_aad(m.public_id)).get("name") or None, m.role) for m in staff
        }
        out = {}
        for code, change in found.items():
            name, role = who.get(change.actor.removeprefix("staff:"), (None, None))
            out[code] = LastChange(change.at, change.actor_type, change.actor, name, role)
        return out


def _require(member: StaffMember) -> None:
    if not may(member, "county_settings"):
        raise Forbidden()
