"""Each institution's permanent QR code (``qr_codes``, the one module that writes it).

The code is asked of WeChat once per institution — ``QR_LIMIT_STR_SCENE`` with ``scene_str`` = the
bare institution code, so a follow through it comes back as ``qrscene_<code>`` and the callback
credits that institution (``identities.scene_institution_code``) — then its ticket and URL are kept
and reused: a permanent code never expires, and the account may create at most 100 000 of them.

WeChat is never awaited inside a transaction (STYLE rule 8): read, ask WeChat, then insert with
"on conflict do nothing" and read again, so two concurrent first requests keep one code.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import County, Institution, QrCode
from ..errors import NotFound
from ..wechat.api import WeChatApi


@dataclass(frozen=True)
class StoredCode:
    institution_code: str
    ticket: str
    url: str  # what the QR code encodes
    new: bool  # asked of WeChat by this call


@dataclass(frozen=True)
class InstitutionView:
    code: str
    name: str
    county_code: str
    county_name: str
    consult_phone: str
    has_code: bool  # its QR code was already asked of WeChat


async def institutions(
    s: AsyncSession, *, county_code: str | None = None, code: str | None = None
) -> list[InstitutionView]:
    """Institutions by county and code, all of them or those of one county or the one code."""
    query = (
        select(Institution, County.name, QrCode.institution_code)
        .join(County, County.code == Institution.county_code)
        .outerjoin(QrCode, QrCode.institution_code == Institution.code)
        .order_by(Institution.county_code, Institution.code)
    )
    if county_code is not None:
        query = query.where(Institution.county_code == county_code)
    if code is not None:
        query = query.where(Institution.code == code)
    return [
        InstitutionView(i.code, i.name, i.county_code, county_name, i.consult_phone or "", stored is not None)
        for i, county_name, stored in (await s.execute(query)).all()
    ]


async def ensure_code(
    sessions: async_sessionmaker[AsyncSession], wechat: WeChatApi, institution_code: str
) -> StoredCode:
    """The institution's stored code, or a new permanent one from WeChat, stored. An institution
    that does not exist → :class:`NotFound` (no code is asked for it). WeChat's refusal is raised
    as it comes (:class:`~wechat_backend.wechat.api.WeChatError`)."""
    async with sessions() as s:
        stored = await s.get(QrCode, institution_code)
        if stored is not None:
            return StoredCode(stored.institution_code, stored.ticket, stored.url, new=False)
        if await s.scalar(select(Institution.id).where(Institution.code == institution_code)) is None:
            raise NotFound("没有这个机构")
    ticket = await wechat.create_qrcode(institution_code)  # permanent: QR_LIMIT_STR_SCENE
    async with sessions.begin() as s:
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        row = {"institution_code": institution_code, "ticket": ticket.ticket, "url": ticket.url}
        await s.execute(insert(QrCode).values(row).on_conflict_do_nothing(index_elements=["institution_code"]))
        kept = (
            await s.execute(select(QrCode.ticket, QrCode.url).where(QrCode.institution_code == institution_code))
        ).one()
    return StoredCode(institution_code, kept.ticket, kept.url, new=kept.ticket == ticket.ticket)
