"""Who a resident can call: the consultation phone of the institution they followed through.

A follower is credited to the institution whose parametric QR code they first followed or scanned
(``identities.scene_institution_code``); its name and ``consult_phone`` end the replies that need a
contact line. The queries here take a session and never commit. :mod:`.callback` caches the line
as replies print it under :func:`contact_key`, so most messages are answered without the database;
:data:`CONTACT_TTL` bounds how long a changed phone goes unseen.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..config import Settings
from ..db.models import Identity, Institution
from ..redis_client import key
from .replies import Contact

CONTACT_TTL = 3600  # bounds how long an institution's changed phone goes unseen


def contact_key(settings: Settings, openid: str) -> str:
    """``{prefix}:wechat:contact:<hashed openid>``: the follower's contact line as replies print it."""
    return key(settings, "wechat", "contact", hashlib.sha256(f"oa|{openid}".encode()).hexdigest()[:32])


async def find_institution(s: AsyncSession, code: str) -> Contact | None:
    """The institution's name and consultation phone, or None when the code is unknown."""
    row = (await s.execute(select(Institution.name, Institution.consult_phone).where(Institution.code == code))).first()
    return Contact(row.name, row.consult_phone) if row else None


async def find_contact(s: AsyncSession, openid: str) -> Contact:
    """The institution a follower came through (first QR scene), in one query; empty if none."""
    row = (
        await s.execute(
            select(Institution.name, Institution.consult_phone)
            .join(Identity, Identity.scene_institution_code == Institution.code)
            .where(Identity.channel == "oa", Identity.openid == openid)
        )
    ).first()
    return Contact(row.name, row.consult_phone) if row else Contact()
