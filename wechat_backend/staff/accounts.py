"""Staff accounts: add, list, disable, and the member a staff session names.

Name and phone are sealed (aad ``staff:<public_id>``); the phone is found by its blind index
(``phone`` purpose, as archives'). Disabling takes effect on the next request: every staff request
loads its member here and a disabled member has no session (``load``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..clock import Clock
from ..config import PrivacySettings
from ..crypto import KeyRing
from ..db.models import County, Institution, Staff
from ..errors import BadInput, NotFound
from ..ids import new_public_id
from ..privacy.masks import mask_phone
from ..validators import parse_mobile
from .scope import ROLES, StaffMember, sms_factor_fresh


@dataclass(frozen=True)
class StaffListing:
    public_id: str
    name: str
    phone: str  # masked
    role: str
    county_code: str | None
    institution_code: str | None
    active: bool
    linked: bool


def staff_aad(public_id: str) -> str:
    return f"staff:{public_id}"


class StaffAccounts:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, clock: Clock, privacy: PrivacySettings
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        self._privacy = privacy

    async def add(
        self,
        *,
        name: str,
        phone: str,
        role: str,
        county_code: str | None = None,
        institution_code: str | None = None,
        actor: str = "cli",
    ) -> StaffListing:
        name = " ".join(name.split())
        if not 1 <= len(name) <= 40:
            raise BadInput("name", "姓名应为 1–40 个字")
        phone = parse_mobile(phone)
        if role not in ROLES:
            raise BadInput("role", "角色应为 city（市级）、county（县级）或 institution（机构）")
        async with self._sessions.begin() as s:
            county_code, institution_code = await _place(s, role, county_code, institution_code)
            bidx = self._keys.blind_index("phone", phone)
            for other in (await s.scalars(select(Staff).where(Staff.phone_bidx == bidx, Staff.active))).all():
                if self._keys.open(other.sealed, staff_aad(other.public_id)).get("phone") == phone:
                    raise BadInput("phone", "该手机号已登记为在用的工作人员，请先停用原账号")
            public_id = new_public_id()
            row = Staff(
                public_id=public_id,
                role=role,
                county_code=county_code,
                institution_code=institution_code,
                active=True,
                sealed=self._keys.seal({"name": name, "phone": phone}, staff_aad(public_id)),
                key_id=self._keys.active_key,
                phone_bidx=bidx,
            )
            s.add(row)
            await s.flush()
            audit.record(
                s,
                actor_type="system",
                actor_id=actor,
                action="staff_add",
                detail={"staff": public_id, "role": role, "county": county_code, "institution": institution_code},
            )
        return self._listing(row)

    async def list(self, *, county_code: str | None = None) -> list[StaffListing]:
        query = select(Staff).order_by(Staff.county_code, Staff.institution_code, Staff.id)
        if county_code:
            query = query.where(Staff.county_code == county_code)
        async with self._sessions() as s:
            return [self._listing(r) for r in (await s.scalars(query)).all()]

    async def disable(self, public_id: str, *, actor: str = "cli") -> StaffListing:
        """Disable the account: their sessions end at once (every request reloads the member)."""
        async with self._sessions.begin() as s:
            row = await s.scalar(select(Staff).where(Staff.public_id == public_id))
            if row is None:
                raise NotFound(f"未找到工作人员 {public_id}（用 wechat-backend staff list 查看编号）")
            row.active = False
            row.disabled_at = self._clock.now()
            audit.record(s, actor_type="system", actor_id=actor, action="staff_disable", detail={"staff": public_id})
        return self._listing(row)

    async def load(self, staff_id: int) -> StaffMember | None:
        """The member a staff session names, or None when the account is disabled, gone, or its
        last SMS code is more than 12 hours old (the session then ends)."""
        async with self._sessions() as s:
            row = await s.get(Staff, staff_id)
            if row is None or not row.active or not sms_factor_fresh(row.sms_verified_at, self._clock.now()):
                return None
            return self.member(row)

    def member(self, row: Staff) -> StaffMember:
        name = self._keys.open(row.sealed, staff_aad(row.public_id)).get("name", "")
        return StaffMember(row.id, row.public_id, row.role, row.county_code, row.institution_code, name)

    def _listing(self, row: Staff) -> StaffListing:
        fields = self._keys.open(row.sealed, staff_aad(row.public_id))
        return StaffListing(
            row.public_id,
            fields.get("name", ""),
            mask_phone(fields.get("phone"), self._privacy),
            row.role,
            row.county_code,
            row.institution_code,
            row.active,
            row.identity_id is not None,
        )


async def _place(
    s: AsyncSession, role: str, county_code: str | None, institution_code: str | None
) -> tuple[str | None, str | None]:
    """The (county, institution) a role is bound to, checked against what was imported."""
    if role == "city":
        if county_code or institution_code:
            raise BadInput("role", "市级管理员不指定县或机构")
        return None, None
    if role == "county":
        if not county_code or institution_code:
            raise BadInput("county", "县级管理员需要 --county 县（市、区）代码，且不指定机构")
        if await s.get(County, county_code) is None:
            raise NotFound(f"未找到县（市、区）{county_code}，请先导入该县的机构")
        return county_code, None
    if not institution_code:
        raise BadInput("institution", "机构工作人员需要 --institution 机构代码")
    inst = await s.scalar(select(Institution).where(Institution.code == institution_code))
    if inst is None:
        raise NotFound(f"未找到机构 {institution_code}，请先导入该机构")
    if county_code and county_code != inst.county_code:
        raise BadInput("county", f"机构 {institution_code} 属于 {inst.county_code}，不是 {county_code}")
    return inst.county_code, institution_code
