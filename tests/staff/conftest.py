"""Staff tests run against the real app with the sandbox mounted (``live``) and the binding tests'
data set imported (``people``: 莘县 371522 open to everyone, 阳谷县 371521 closed).

``staff_web(role, ...)`` gives an httpx client logged in as a new staff member. It opens the staff
session the way the login does once both factors are in (the linked WeChat identity, an SMS code
verified now): the login flow itself is tested in ``test_login.py``. Posts carry the XSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from binding.conftest import OTHER_COUNTY, Resident, dataset, people, person, resident  # noqa: F401
from conftest import Live
from ingest_lines import COUNTY
from sqlalchemy import select

from wechat_backend.db.models import Staff

INSTITUTION = f"{COUNTY}001"  # 莘县燕店镇卫生院
OTHER_INSTITUTION = f"{OTHER_COUNTY}001"  # 阳谷县某卫生院


@dataclass
class StaffWeb:
    """A logged-in staff member's browser: ``get``/``post`` relative paths."""

    base: str
    client: httpx.AsyncClient
    public_id: str
    staff_id: int
    role: str

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(self.base + path, **kw)

    async def post(self, path: str, data: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(self.base + path, data=data, **kw)

    async def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, self.base + path, json=body)


async def staff_session(services: Any, public_id: str) -> str:
    """Mark the member's SMS factor fresh and open a staff session for them; returns its id."""
    async with services.sessions.begin() as s:
        row = await s.scalar(select(Staff).where(Staff.public_id == public_id))
        row.sms_verified_at = services.clock.now()
        staff_id = row.id
    return await services.web_sessions.open(staff_id, "staff")


@pytest.fixture
async def staff_web(people: Live) -> AsyncIterator[Any]:  # noqa: F811
    """``await staff_web("county", county=COUNTY)``: a new staff member, logged in."""
    base, services = people
    clients: list[httpx.AsyncClient] = []

    async def make(
        role: str, *, county: str | None = None, institution: str | None = None, name: str = "王医生"
    ) -> StaffWeb:
        phone = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
        added = await services.staff.add(
            name=name, phone=phone, role=role, county_code=county, institution_code=institution
        )
        session_id = await staff_session(services, added.public_id)
        token = secrets.token_hex(16)
        http = httpx.AsyncClient(
            trust_env=False,
            timeout=20,
            cookies={"wb_staff": session_id, "_xsrf": token},
            headers={"X-XSRFToken": token},
        )
        clients.append(http)
        async with services.sessions() as s:
            staff_id = await s.scalar(select(Staff.id).where(Staff.public_id == added.public_id))
        return StaffWeb(base, http, added.public_id, staff_id, role)

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()
