"""WeChat identities: one row per (channel, openid); official-account (oa) and mini-program (mp)
rows of one person share a unionid when the platform gives one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .clock import Clock
from .db.models import Identity


@dataclass(frozen=True)
class IdentityView:
    id: int
    public_id: str
    channel: str
    openid: str
    unionid: str | None
    subscribed: bool
    scene_institution_code: str | None


def _view(i: Identity) -> IdentityView:
    return IdentityView(i.id, i.public_id, i.channel, i.openid, i.unionid, i.subscribed, i.scene_institution_code)


class IdentityService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def upsert(
        self,
        channel: str,
        openid: str,
        *,
        unionid: str | None = None,
        subscribed: bool | None = None,
        scene_institution_code: str | None = None,
    ) -> IdentityView:
        """Create or update the identity. ``subscribed`` True/False records a follow/unfollow (with
        its time); None leaves it as it is (an OAuth login says nothing about following). The first
        institution scene is kept: it is what the statistics credit the follow to."""
        try:
            return await self._upsert(channel, openid, unionid, subscribed, scene_institution_code)
        except IntegrityError:  # the same person's first two requests at once: the row exists now
            return await self._upsert(channel, openid, unionid, subscribed, scene_institution_code)

    async def _upsert(
        self,
        channel: str,
        openid: str,
        unionid: str | None,
        subscribed: bool | None,
        scene_institution_code: str | None,
    ) -> IdentityView:
        now = self._clock.now()
        async with self._sessions.begin() as s:
            row = await _get(s, channel, openid)
            if row is None:
                row = Identity(channel=channel, openid=openid, subscribed=False, created_at=now, updated_at=now)
                s.add(row)
            if unionid and row.unionid != unionid:
                row.unionid = unionid
            if subscribed is True and not row.subscribed:
                row.subscribed, row.subscribed_at = True, now
            elif subscribed is False and row.subscribed:
                row.subscribed, row.unsubscribed_at = False, now
            if scene_institution_code and not row.scene_institution_code:
                row.scene_institution_code = scene_institution_code
            row.updated_at = now
            await s.flush()
            return _view(row)

    async def get(self, identity_id: int) -> IdentityView | None:
        async with self._sessions() as s:
            row = await s.get(Identity, identity_id)
            return _view(row) if row else None

    async def by_openid(self, channel: str, openid: str) -> IdentityView | None:
        async with self._sessions() as s:
            row = await _get(s, channel, openid)
            return _view(row) if row else None


async def _get(s: AsyncSession, channel: str, openid: str) -> Identity | None:
    return (await s.scalars(select(Identity).where(Identity.channel == channel, Identity.openid == openid))).first()
