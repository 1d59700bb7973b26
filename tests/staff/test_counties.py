"""开放设置 (/staff/counties): county admins set their own county, city admins any; every change
is audited as the staff member, and residents' views follow it."""

from __future__ import annotations

from typing import Any

from binding.conftest import ELDER, OTHER_COUNTY
from conftest import Live
from ingest_lines import COUNTY
from sqlalchemy import select

from handlers.staff.counties import local_time
from staff.conftest import INSTITUTION
from wechat_backend.db.models import AuditEvent, County


async def county_row(services: Any, code: str) -> County:
    async with services.sessions() as s:
        return await s.get(County, code)


async def county_changes(services: Any) -> list[AuditEvent]:
    async with services.sessions() as s:
        return list((await s.scalars(select(AuditEvent).where(AuditEvent.action == "county_set"))).all())


async def test_a_county_admin_switches_their_county_and_residents_see_it(staff_web, resident, people: Live) -> None:
    _, services = people
    who = await resident()
    await who.bind(ELDER)
    assert [a["open"] for a in await who.archives()] == [True]
    admin = await staff_web("county", county=COUNTY, name="县管理员甲")

    r = await admin.post(
        "/staff/counties", {"county": COUNTY, "opening": "off", "phase": "all"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    page = await admin.get(r.headers["Location"])
    assert page.status_code == 200
    assert "已保存" in page.text and "未开放" in page.text
    assert (await county_row(services, COUNTY)).opening is False
    [listed] = await who.archives()
    assert listed["open"] is False and "暂未开放自助查询" in listed["message"]

    changes = [e for e in await county_changes(services) if e.actor_type == "staff"]
    assert [(e.actor_id, e.detail) for e in changes] == [
        (f"staff:{admin.public_id}", {"county": COUNTY, "opening": False, "phase": "all"})
    ]
    # Who changed it last, and when (Beijing time), from that audit row.
    assert f"县管理员甲（县级管理员），{local_time(changes[0].at)}" in page.text

    r = await admin.post("/staff/counties", {"county": COUNTY, "opening": "on", "phase": "key_populations"})
    assert r.status_code == 303
    county = await county_row(services, COUNTY)
    assert (county.opening, county.phase) == (True, "key_populations")
    assert [a["open"] for a in await who.archives()] == [True]  # 71 years old: a key population


async def test_a_county_admin_sees_only_their_county_and_cannot_set_another(staff_web, people: Live) -> None:
    _, services = people
    admin = await staff_web("county", county=COUNTY)
    page = await admin.get("/staff/counties")
    assert page.status_code == 200
    assert f'data-test="county-{COUNTY}"' in page.text
    assert f'data-test="county-{OTHER_COUNTY}"' not in page.text

    before = len(await county_changes(services))
    r = await admin.post("/staff/counties", {"county": OTHER_COUNTY, "opening": "on", "phase": "all"})
    unknown = await admin.post("/staff/counties", {"county": "999999", "opening": "on", "phase": "all"})
    assert r.status_code == unknown.status_code == 404
    assert "未找到相关记录" in r.text
    assert (await county_row(services, OTHER_COUNTY)).opening is False
    assert len(await county_changes(services)) == before


async def test_a_city_admin_sets_any_county(staff_web, people: Live) -> None:
    _, services = people
    city = await staff_web("city", name="市管理员")
    page = await city.get("/staff/counties")
    assert f'data-test="county-{COUNTY}"' in page.text and f'data-test="county-{OTHER_COUNTY}"' in page.text
    r = await city.post("/staff/counties", {"county": OTHER_COUNTY, "opening": "on", "phase": "all"})
    assert r.status_code == 303
    county = await county_row(services, OTHER_COUNTY)
    assert (county.opening, county.phase) == (True, "all")
    [change] = [e for e in await county_changes(services) if e.detail["county"] == OTHER_COUNTY]
    assert (change.actor_type, change.actor_id) == ("staff", f"staff:{city.public_id}")


async def test_institution_staff_may_not_use_county_settings(staff_web, people: Live) -> None:
    web = await staff_web("institution", institution=INSTITUTION)
    assert (await web.get("/staff/counties")).status_code == 403
    r = await web.post("/staff/counties", {"county": COUNTY, "opening": "off", "phase": "all"})
    assert r.status_code == 403
    _, services = people
    assert (await county_row(services, COUNTY)).opening is True


async def test_a_bad_choice_is_a_clear_error_and_changes_nothing(staff_web, people: Live) -> None:
    _, services = people
    admin = await staff_web("county", county=COUNTY)
    before = len(await county_changes(services))
    r = await admin.post("/staff/counties", {"county": COUNTY, "opening": "maybe", "phase": "all"})
    assert r.status_code == 400 and "请选择是否开放给居民" in r.text
    r = await admin.post("/staff/counties", {"county": COUNTY, "opening": "off", "phase": "everyone"})
    assert r.status_code == 400 and "请选择开放阶段" in r.text
    assert (await county_row(services, COUNTY)).opening is True
    assert len(await county_changes(services)) == before


async def test_the_cli_change_shows_as_the_command_line(staff_web, people: Live) -> None:
    # The people fixture switched 莘县 on with the CLI's service call.
    admin = await staff_web("county", county=COUNTY)
    page = await admin.get("/staff/counties")
    assert "最近修改：命令行" in page.text
