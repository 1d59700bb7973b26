"""县级参数: each county's opening switch and rollout phase (counties are created by import)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import audit
from .db.models import Archive, County, Institution
from .errors import BadInput, NotFound

PHASES = ("key_populations", "all")


@dataclass(frozen=True)
class CountyView:
    code: str
    name: str
    opening: bool
    phase: str
    institutions: int
    archives: int


class CountyService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def list(self) -> list[CountyView]:
        async with self._sessions() as s:
            inst = dict(
                (await s.execute(select(Institution.county_code, func.count()).group_by(Institution.county_code))).all()
            )
            arch = dict(
                (await s.execute(select(Archive.county_code, func.count()).group_by(Archive.county_code))).all()
            )
            counties = (await s.scalars(select(County).order_by(County.code))).all()
        return [
            CountyView(c.code, c.name, c.opening, c.phase, inst.get(c.code, 0), arch.get(c.code, 0)) for c in counties
        ]

    async def set(
        self,
        code: str,
        *,
        opening: bool | None = None,
        phase: str | None = None,
        actor: str = "cli",
        actor_type: str = "system",
    ) -> CountyView:
        """Change one county's switch and/or phase; audited as ``county_set`` by ``actor_type``/``actor``
        (the CLI: ``system``/``cli``; the 工作台: ``staff``/``StaffMember.actor_id``)."""
        if phase is not None and phase not in PHASES:
            raise BadInput("phase", "开放阶段应为 key_populations（重点人群）或 all（全部居民）")
        async with self._sessions.begin() as s:
            county = await s.get(County, code)
            if county is None:
                raise NotFound(f"未找到县（市、区）{code}，请先导入该县的机构")
            if opening is not None:
                county.opening = opening
            if phase is not None:
                county.phase = phase
            audit.record(
                s,
                actor_type=actor_type,
                actor_id=actor,
                action="county_set",
                detail={"county": code, "opening": county.opening, "phase": county.phase},
            )
        return next(c for c in await self.list() if c.code == code)

    async def set_all(self, *, opening: bool, phase: str, actor: str = "demo") -> int:
        async with self._sessions.begin() as s:
            counties = (await s.scalars(select(County))).all()
            for c in counties:
                c.opening, c.phase = opening, phase
            audit.record(
                s,
                actor_type="system",
                actor_id=actor,
                action="county_set_all",
                detail={"opening": opening, "phase": phase},
            )
            return len(counties)
