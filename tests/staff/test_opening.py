"""开放档案 (/staff/archives): finding an archive in scope by each of its three keys, the same
not-found for an archive outside the scope as for none, the audited reads, the local 是否开放给居民
decision and how it combines with later imports, and bulk opening."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from binding.conftest import CLOSED_COUNTY, ELDER, NOT_OPENED, OTHER_COUNTY, SENSITIVE, person
from conftest import Live
from e2e.conftest import browser, console_problems  # noqa: F401  (browser: a fixture)
from ingest_lines import COUNTY, archive, id_number, institution, write
from sqlalchemy import select

from handlers.staff.archives import REASON_TEXT
from staff.conftest import INSTITUTION, OTHER_INSTITUTION, StaffWeb
from wechat_backend.db.models import Archive, ArchiveCount, AuditEvent
from wechat_backend.privacy.visibility import REASONS
from wechat_backend.staff.scope import StaffMember

SAME_COUNTY_INSTITUTION = f"{COUNTY}002"  # another institution of 莘县


def by_archive_no(n: int) -> dict[str, str]:
    return {"archive_no": person(n)["archive_no"]}


def by_id_number(n: int) -> dict[str, str]:
    return {"id_number": person(n)["id_number"]}


def by_name_birth(n: int) -> dict[str, str]:
    return {"name": person(n)["name"], "birth_date": person(n)["birth_date"]}


async def public_id(services: Any, upstream_id: str) -> str:
    async with services.sessions() as s:
        return await s.scalar(select(Archive.public_id).where(Archive.upstream_id == upstream_id))


async def audit_rows(services: Any, action: str) -> list[AuditEvent]:
    async with services.sessions() as s:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list((await s.scalars(query)).all())


async def opened_count(services: Any, institution_code: str = INSTITUTION) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(ArchiveCount.opened).where(ArchiveCount.institution_code == institution_code))


async def find(web: StaffWeb, form: dict[str, str]) -> httpx.Response:
    return await web.post("/staff/archives", form, follow_redirects=False)


def page_without_tokens(r: httpx.Response) -> str:
    """The page as a person sees it: the per-response XSRF token and request id taken out."""
    text = re.sub(r'name="_xsrf" value="[^"]*"', "", r.text)
    return re.sub(r"编号：[0-9a-f]+", "", text)


async def import_lines(services: Any, tmp_path: Path, lines: list[dict[str, Any]], name: str = "more") -> None:
    report = await services.ingest.import_file(write(tmp_path / f"{name}.jsonl", lines))
    assert report.exit_code == 0, report


async def decide(web: StaffWeb, archive: str, decision: str) -> None:
    r = await web.post(f"/staff/archives/{archive}/opening", {"decision": decision}, follow_redirects=False)
    assert r.status_code == 303, r.text


# --------------------------------------------------------------------------- finding


async def test_each_key_finds_the_archive_in_scope(staff_web, people: Live) -> None:
    _, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    elder = await public_id(services, f"arc-{ELDER}")
    for form in (by_archive_no(ELDER), by_id_number(ELDER), by_name_birth(ELDER)):
        r = await find(web, form)
        assert r.status_code == 303, (form.keys(), r.text)
        assert r.headers["Location"] == f"/staff/archives/{elder}"
        page = await web.get(r.headers["Location"])
        assert page.status_code == 200
        assert person(ELDER)["name"] in page.text and person(ELDER)["archive_no"] in page.text
    # A name typed with spaces still finds it.
    r = await find(web, {"name": " 刘 淑珍 ", "birth_date": "1955-03-10"})
    assert r.headers.get("Location") == f"/staff/archives/{elder}"


async def test_a_county_admin_finds_archives_of_every_institution_of_the_county(
    staff_web, people: Live, tmp_path: Path
) -> None:
    _, services = people
    other = archive(
        30,
        name="郑某某",
        institution_code=SAME_COUNTY_INSTITUTION,
        archive_no=f"{COUNTY}002101{30:05d}",
        id_number=id_number(seq="330"),
    )
    await import_lines(
        services,
        tmp_path,
        [institution(upstream_id="inst-3", code=SAME_COUNTY_INSTITUTION, name="莘县另一卫生院"), other],
    )
    county = await staff_web("county", county=COUNTY)
    assert (await find(county, {"archive_no": other["archive_no"]})).status_code == 303
    # …which the first institution's staff cannot: the same not-found as a number no one has.
    web = await staff_web("institution", institution=INSTITUTION)
    outside = await find(web, {"archive_no": other["archive_no"]})
    nobody = await find(web, {"archive_no": f"{COUNTY}002101{99:05d}"})
    assert outside.status_code == nobody.status_code == 404
    assert page_without_tokens(outside) == page_without_tokens(nobody)


async def test_an_archive_outside_the_scope_is_the_same_not_found_as_none(staff_web, people: Live) -> None:
    _, services = people
    other_county = await staff_web("institution", institution=OTHER_INSTITUTION)
    nobody = await find(other_county, {"id_number": id_number(seq="999")})
    assert nobody.status_code == 404
    assert "未找到相关档案" in nobody.text
    for form in (by_archive_no(ELDER), by_id_number(ELDER), by_name_birth(ELDER)):
        outside = await find(other_county, form)
        assert outside.status_code == 404
        assert page_without_tokens(outside) == page_without_tokens(nobody)
    # The archive's own page by its id: the same 404 as an id that does not exist.
    elder = await public_id(services, f"arc-{ELDER}")
    by_id = await other_county.get(f"/staff/archives/{elder}")
    no_id = await other_county.get("/staff/archives/AAAAAAAAAAAAAAAA")
    assert by_id.status_code == no_id.status_code == 404
    assert page_without_tokens(by_id) == page_without_tokens(no_id)
    r = await other_county.post(f"/staff/archives/{elder}/opening", {"decision": "close"})
    assert r.status_code == 404
    # The county admin of the other county does not find it either; its own archive, yes.
    admin = await staff_web("county", county=OTHER_COUNTY)
    assert (await find(admin, by_id_number(ELDER))).status_code == 404
    assert (await find(admin, by_id_number(CLOSED_COUNTY))).status_code == 303


async def test_a_wrong_value_is_not_found_and_a_malformed_one_says_what_to_fix(staff_web, people: Live) -> None:
    web = await staff_web("institution", institution=INSTITUTION)
    r = await find(web, {"name": person(ELDER)["name"], "birth_date": "1955-03-11"})
    assert r.status_code == 404 and "未找到相关档案" in r.text
    r = await find(web, {"id_number": "37152219550310123"})
    assert r.status_code == 400 and 'data-test="search-error"' in r.text
    r = await find(web, {"name": person(ELDER)["name"]})
    assert r.status_code == 400 and "请同时填写姓名和出生日期" in r.text
    r = await find(web, {})
    assert r.status_code == 400 and "请填写档案编号、身份证号" in r.text
    # The search page is a form that posts: the values never ride in a URL.
    form = await web.get("/staff/archives")
    assert form.status_code == 200
    assert re.search(r'<form[^>]*method="post"[^>]*action="/staff/archives"', form.text)


async def test_lookups_and_views_are_audited_without_the_typed_values(staff_web, people: Live) -> None:
    _, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    elder_id = await public_id(services, f"arc-{ELDER}")
    await find(web, by_id_number(ELDER))
    await find(web, by_name_birth(ELDER))
    await find(web, {"id_number": id_number(seq="999")})
    await web.get(f"/staff/archives/{elder_id}")

    lookups = await audit_rows(services, "staff_archive_lookup")
    async with services.sessions() as s:
        elder_pk = await s.scalar(select(Archive.id).where(Archive.public_id == elder_id))
    assert [(e.actor_type, e.actor_id, e.archive_id, e.result, e.detail) for e in lookups] == [
        ("staff", f"staff:{web.public_id}", elder_pk, "ok", {"by": "id_number"}),
        ("staff", f"staff:{web.public_id}", elder_pk, "ok", {"by": "name_birth"}),
        ("staff", f"staff:{web.public_id}", None, "denied", {"by": "id_number"}),
    ]
    [view] = await audit_rows(services, "staff_archive_view")
    assert (view.actor_id, view.archive_id, view.result) == (f"staff:{web.public_id}", elder_pk, "ok")
    typed = (person(ELDER)["id_number"], person(ELDER)["name"], id_number(seq="999"), "1955-03-10")
    for row in [*lookups, view]:
        text = json.dumps([row.actor_id, row.action, row.reason, row.detail, row.request_id], ensure_ascii=False)
        assert not any(value in text for value in typed)


# --------------------------------------------------------------------------- the local decision


async def test_closing_and_opening_an_archive_changes_what_its_resident_sees(staff_web, resident, people: Live) -> None:
    _, services = people
    who = await resident()
    await who.bind(ELDER)
    web = await staff_web("institution", institution=INSTITUTION, name="李医生")
    elder = await public_id(services, f"arc-{ELDER}")

    page = await web.get(f"/staff/archives/{elder}")
    assert 'data-test="visible"' in page.text
    await decide(web, elder, "close")
    assert [a["open"] for a in await who.archives()] == [False]
    page = await web.get(f"/staff/archives/{elder}?saved=1")
    assert "已保存" in page.text
    assert re.search(r'data-test="reason">未开放给居民<', page.text)
    assert re.search(r'data-test="override">\s*关闭', page.text) and "李医生" in page.text
    opened_when_closed = await opened_count(services)

    await decide(web, elder, "open")
    assert [a["open"] for a in await who.archives()] == [True]
    assert await opened_count(services) == opened_when_closed + 1

    [*_, last] = await audit_rows(services, "archive_open_set")
    assert (last.actor_type, last.actor_id, last.detail) == ("staff", f"staff:{web.public_id}", {"decision": "open"})
    assert len(await audit_rows(services, "archive_open_set")) == 2


async def test_a_staff_view_shows_in_the_residents_access_log(staff_web, resident, people: Live) -> None:
    _, services = people
    who = await resident()
    bound = await who.bind(ELDER)
    elder = await public_id(services, f"arc-{ELDER}")
    nurse = await staff_web("institution", institution=INSTITUTION)
    admin = await staff_web("county", county=COUNTY)
    assert (await nurse.get(f"/staff/archives/{elder}")).status_code == 200
    assert (await admin.get(f"/staff/archives/{elder}")).status_code == 200

    r = await who.call("GET", f"/api/v1/archives/{bound['id']}/access-log")
    assert r.status_code == 200, r.text
    staff_lines = [e for e in r.json()["entries"] if e["section"] == "档案首页" and "工作人员" in e["actor"]]
    assert [e["actor"] for e in staff_lines] == ["卫生健康行政部门工作人员", "建档机构工作人员"]


async def test_a_list_of_several_matches_is_a_read_of_each_in_the_residents_access_log(
    staff_web, resident, people: Live, tmp_path: Path
) -> None:
    _, services = people
    twin = archive(
        90, name=person(ELDER)["name"], birth_date=person(ELDER)["birth_date"], id_number=id_number(seq="909")
    )
    await import_lines(services, tmp_path, [twin], "twin")
    who = await resident()
    bound = await who.bind(ELDER)
    nurse = await staff_web("institution", institution=INSTITUTION)
    r = await find(nurse, by_name_birth(ELDER))
    assert r.status_code == 200 and r.text.count(person(ELDER)["archive_no"]) >= 1  # the list, not a redirect

    r = await who.call("GET", f"/api/v1/archives/{bound['id']}/access-log")
    assert [e["actor"] for e in r.json()["entries"] if e["section"] == "档案首页"] == ["建档机构工作人员"]


async def test_a_later_import_does_not_undo_a_local_decision_and_follow_upstream_hands_it_back(
    staff_web, resident, people: Live, tmp_path: Path
) -> None:
    _, services = people
    who = await resident()
    await who.bind(ELDER)
    web = await staff_web("institution", institution=INSTITUTION)
    elder = await public_id(services, f"arc-{ELDER}")
    await decide(web, elder, "open")
    opened_before = await opened_count(services)

    # The upstream closes it (a higher version): the local 开放 stands.
    await import_lines(services, tmp_path, [{**person(ELDER), "version": 2, "open_to_resident": False}], "v2")
    assert [a["open"] for a in await who.archives()] == [True]
    page = await web.get(f"/staff/archives/{elder}")
    assert re.search(r'data-test="upstream">不开放<', page.text)
    assert re.search(r'data-test="effective"><strong>开放<', page.text)

    # 跟随上游: the upstream's 不开放 now counts.
    await decide(web, elder, "follow")
    assert [a["open"] for a in await who.archives()] == [False]
    assert await opened_count(services) == opened_before - 1
    page = await web.get(f"/staff/archives/{elder}")
    assert re.search(r'data-test="override">\s*跟随上游', page.text)
    assert re.search(r'data-test="reason">未开放给居民<', page.text)

    # And the other way round: a local 关闭 survives an upstream 开放.
    await decide(web, elder, "close")
    await import_lines(services, tmp_path, [{**person(ELDER), "version": 3, "open_to_resident": True}], "v3")
    assert [a["open"] for a in await who.archives()] == [False]
    await decide(web, elder, "follow")
    assert [a["open"] for a in await who.archives()] == [True]


async def test_the_precise_reason_is_shown_to_staff(staff_web, people: Live) -> None:
    _, services = people
    assert set(REASONS) <= set(REASON_TEXT)
    web = await staff_web("institution", institution=INSTITUTION)
    page = await web.get(f"/staff/archives/{await public_id(services, f'arc-{SENSITIVE}')}")
    assert re.search(r'data-test="reason">含不向居民开放的管理项目<', page.text)
    admin = await staff_web("county", county=OTHER_COUNTY)
    page = await admin.get(f"/staff/archives/{await public_id(services, f'arc-{CLOSED_COUNTY}')}")
    assert re.search(r'data-test="reason">本县尚未开放<', page.text)


async def test_a_bad_decision_changes_nothing(staff_web, people: Live) -> None:
    _, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    elder = await public_id(services, f"arc-{ELDER}")
    r = await web.post(f"/staff/archives/{elder}/opening", {"decision": "maybe"})
    assert r.status_code == 400 and "请选择开放、关闭或跟随上游" in r.text
    async with services.sessions() as s:
        assert await s.scalar(select(Archive.open_override).where(Archive.public_id == elder)) is None
    assert await audit_rows(services, "archive_open_set") == []


async def test_city_staff_may_not_open_archives(staff_web, people: Live) -> None:
    city = await staff_web("city")
    assert (await city.get("/staff/archives")).status_code == 403
    assert (await find(city, by_id_number(ELDER))).status_code == 403
    assert (await city.get("/staff/archives/bulk")).status_code == 403


# --------------------------------------------------------------------------- bulk opening


async def wait_done(web: StaffWeb, location: str) -> dict[str, Any]:
    job = location.rsplit("/", 1)[1]
    for _ in range(200):
        r = await web.get(f"/staff/api/bulk-open/{job}")
        assert r.status_code == 200, r.text
        if r.json()["state"] != "running":
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError("the bulk opening did not finish")


async def test_bulk_open_previews_runs_once_and_leaves_sensitive_archives_hidden(
    staff_web, resident, people: Live, tmp_path: Path
) -> None:
    _, services = people
    await import_lines(
        services,
        tmp_path,
        [
            {**person(NOT_OPENED), "version": 2, "completeness": 90},  # opened
            {**person(SENSITIVE), "version": 2, "completeness": 85, "open_to_resident": False},  # opened, still hidden
            archive(20, name="低完整率", id_number=id_number(seq="320"), completeness=50, open_to_resident=False),
            archive(
                21,
                name="失访者",
                id_number=id_number(seq="321"),
                completeness=95,
                open_to_resident=False,
                status="lost",
            ),
            archive(22, name="单独关闭", id_number=id_number(seq="322"), completeness=95, open_to_resident=False),
            {**person(CLOSED_COUNTY), "version": 2, "completeness": 99, "open_to_resident": False},  # other county
        ],
    )
    web = await staff_web("county", county=COUNTY)
    member = await staff_web("institution", institution=INSTITUTION)
    await decide(member, await public_id(services, "arc-22"), "close")  # a member's own decision
    opened_before = await opened_count(services)

    preview = await web.get("/staff/archives/bulk")
    assert preview.status_code == 200
    assert re.search(r'data-test="bulk-count">2<', preview.text)
    assert "另有 1 份符合条件的档案已由工作人员单独设为“关闭”" in preview.text

    r = await web.post("/staff/archives/bulk", {}, follow_redirects=False)
    assert r.status_code == 303, r.text
    done = await wait_done(web, r.headers["Location"])
    assert (done["state"], done["opened"], done["total"]) == ("done", 2, 2)
    page = await web.get(r.headers["Location"])
    assert re.search(r'data-test="bulk-done">\s*完成：已开放 <strong data-field="opened">2<', page.text)
    # Only its starter may follow the job.
    assert (await member.get(f"/staff/api/bulk-open/{done['job']}")).status_code == 404

    [row] = await audit_rows(services, "archive_bulk_open")
    assert (row.actor_type, row.actor_id, row.archive_id) == ("staff", f"staff:{web.public_id}", None)
    assert row.detail == {"count": 2, "scope": f"county:{COUNTY}", "min_completeness": 80}
    assert await opened_count(services) == opened_before + 2

    # Nothing more to open; the individually closed, the lost and the incomplete stay as they were.
    again = await web.get("/staff/archives/bulk")
    assert 'data-test="bulk-nothing"' in again.text
    async with services.sessions() as s:
        overrides = dict((await s.execute(select(Archive.upstream_id, Archive.open_override))).all())
    assert overrides[f"arc-{NOT_OPENED}"] is True and overrides[f"arc-{SENSITIVE}"] is True
    assert overrides["arc-22"] is False
    assert overrides["arc-20"] is None and overrides["arc-21"] is None and overrides[f"arc-{CLOSED_COUNTY}"] is None

    # The opened archive can be bound and read; the sensitive one is still not open to its resident.
    who = await resident()
    await who.bind(NOT_OPENED)
    assert [a["open"] for a in await who.archives()] == [True]
    other = await resident()
    refused = await other.start(SENSITIVE)
    assert refused.status_code == 403 and refused.json()["error"] == "not_open"
    page = await web.get(f"/staff/archives/{await public_id(services, f'arc-{SENSITIVE}')}")
    assert re.search(r'data-test="effective"><strong>开放<', page.text)
    assert re.search(r'data-test="reason">含不向居民开放的管理项目<', page.text)


async def test_bulk_open_of_an_institution_stays_in_the_institution(staff_web, people: Live, tmp_path: Path) -> None:
    _, services = people
    await import_lines(
        services,
        tmp_path,
        [
            institution(upstream_id="inst-3", code=SAME_COUNTY_INSTITUTION, name="莘县另一卫生院"),
            {**person(NOT_OPENED), "version": 2, "completeness": 90},
            archive(
                31,
                institution_code=SAME_COUNTY_INSTITUTION,
                archive_no=f"{COUNTY}002101{31:05d}",
                id_number=id_number(seq="331"),
                completeness=90,
                open_to_resident=False,
            ),
        ],
    )
    web = await staff_web("institution", institution=INSTITUTION)
    assert re.search(r'data-test="bulk-count">1<', (await web.get("/staff/archives/bulk")).text)
    r = await web.post("/staff/archives/bulk", {}, follow_redirects=False)
    assert (await wait_done(web, r.headers["Location"]))["opened"] == 1
    [row] = await audit_rows(services, "archive_bulk_open")
    assert row.detail["scope"] == f"institution:{INSTITUTION}"
    async with services.sessions() as s:
        assert await s.scalar(select(Archive.open_override).where(Archive.upstream_id == "arc-31")) is None


# --------------------------------------------------------------------------- in a real browser


async def test_the_pages_fit_a_small_phone_and_the_progress_updates_itself(
    browser: Any,  # noqa: F811
    staff_web,
    people: Live,
) -> None:
    from playwright.async_api import expect

    base, services = people
    web = await staff_web("county", county=COUNTY)
    elder = await public_id(services, f"arc-{ELDER}")
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    await context.add_cookies([{"name": "wb_staff", "value": web.client.cookies["wb_staff"], "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)

    async def fits(name: str) -> None:
        await page.screenshot(path=f"/tmp/staff_opening_{name}.png", full_page=True)
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375, name

    try:
        await page.goto(base + "/staff/archives")
        await fits("search")
        await page.fill('input[name="id_number"]', person(ELDER)["id_number"])
        await page.click('[data-test="search-form"] button[type="submit"]')
        await expect(page.locator("h1")).to_have_text(person(ELDER)["name"])
        assert page.url == f"{base}/staff/archives/{elder}"  # the typed number is in no URL
        await fits("archive")
        await page.check('input[name="decision"][value="close"]')
        await page.click('[data-test="opening-form"] button[type="submit"]')
        await expect(page.locator('[data-test="saved"]')).to_be_visible()
        await expect(page.locator('[data-test="reason"]')).to_have_text("未开放给居民")

        # A run still going: the page polls and shows the result when it is in.
        job = "browserjob1"
        await services.bulk_open._save(job, _member(web), "running", 1500, 500, 0)
        await page.goto(base + f"/staff/archives/bulk/{job}")
        await expect(page.locator('[data-test="bulk-running"]')).to_contain_text("500 / 1500")
        await fits("progress")
        await services.bulk_open._save(job, _member(web), "done", 1500, 1500, 1498)
        await expect(page.locator('[data-test="bulk-done"]')).to_contain_text("已开放 1498 份档案")
        await expect(page.locator('[data-test="bulk-running"]')).to_be_hidden()
        assert await page.locator("progress").evaluate("p => p.value") == 1500

        await page.goto(base + "/staff/counties")
        await fits("counties")
        await page.check(f'[data-test="county-{COUNTY}"] input[name="opening"][value="off"]')
        await page.click(f'[data-test="county-{COUNTY}"] button[type="submit"]')
        await expect(page.locator(f'[data-test="county-{COUNTY}"] [data-test="saved"]')).to_be_visible()
        await expect(page.locator('[data-test="county-state"]')).to_contain_text("未开放")
        assert problems == []
    finally:
        await context.close()


def _member(web: StaffWeb) -> Any:
    """The member a job belongs to, as the service keys it (only the public id counts)."""
    return StaffMember(web.staff_id, web.public_id, web.role, COUNTY, None)
