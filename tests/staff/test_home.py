"""The 工作台's front page and the gate in front of every staff route."""

from __future__ import annotations

import httpx
from conftest import Live

from staff.conftest import INSTITUTION


async def test_without_a_session_the_staff_home_goes_to_the_staff_login(people: Live) -> None:
    base, _ = people
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.get(base + "/staff/")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/staff/login?next=")


async def test_a_resident_session_on_a_staff_route_is_403(resident, people: Live) -> None:
    base, _ = people
    who = await resident("居民")
    r = await who.client.get(base + "/staff/", headers={"Authorization": f"Bearer {who.token}"})
    assert r.status_code == 403
    assert "工作人员登录" in r.text  # a staff member whose staff session ended can log in again
    r = await who.client.get(base + "/staff/api/bulk-open/x", headers={"Authorization": f"Bearer {who.token}"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


async def test_a_disabled_member_loses_the_session_at_once(staff_web, people: Live) -> None:
    _, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    assert (await web.get("/staff/")).status_code == 200
    await services.staff.disable(web.public_id)
    r = await web.get("/staff/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")


async def test_a_staff_session_is_never_a_residents(staff_web, people: Live) -> None:
    web = await staff_web("city")
    r = await web.get("/api/v1/archives")
    assert r.status_code == 401
