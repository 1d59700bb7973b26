"""审计日志 in the 工作台: a county admin sees their county's rows and no other county's, filters
by archive (its number typed, never in a URL), actor, action and local dates, pages newest first,
exports the same rows as CSV; city admins see everything, institution staff nothing. Every look
is itself audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from binding.conftest import CLOSED_COUNTY, ELDER, NOT_OPENED, OTHER_COUNTY, TEEN, person
from conftest import Live
from e2e.conftest import browser, console_problems  # noqa: F401  (browser: a fixture)
from ingest_lines import COUNTY
from sqlalchemy import insert, select

from staff.conftest import INSTITUTION
from wechat_backend import audit
from wechat_backend.audit_viewer.filters import PER_PAGE
from wechat_backend.db.models import Archive, AuditEvent, Identity

LOG = AuditEvent.__table__
ROW = re.compile(r'<tr data-test="audit-row" data-action="([a-z_]+)">\s*<td>([^<]+)</td>')


def rows_of(html: str) -> list[tuple[str, str]]:
    """(action, local time) of each row the page shows, top to bottom."""
    return ROW.findall(html)


async def archive_ids(services: Any, n: int) -> tuple[int, str]:
    async with services.sessions() as s:
        row = (await s.execute(select(Archive.id, Archive.public_id).where(Archive.upstream_id == f"arc-{n}"))).one()
    return row.id, row.public_id


async def binder_public_id(services: Any, archive_id: int) -> str:
    """The public id of the identity that bound this archive (as the audit log names it)."""
    async with services.sessions() as s:
        key = await s.scalar(select(LOG.c.actor_id).where(LOG.c.action == "bind", LOG.c.archive_id == archive_id))
        return await s.scalar(select(Identity.public_id).where(Identity.id == int(key)))


async def put(services: Any, *rows: dict[str, Any]) -> None:
    base = {"actor_type": "system", "actor_id": "cli", "result": "ok"}
    async with services.sessions.begin() as s:
        await s.execute(insert(LOG), [base | r for r in rows])


async def audit_rows(services: Any, action: str) -> list[Any]:
    async with services.sessions() as s:
        return list((await s.execute(select(AuditEvent).where(AuditEvent.action == action))).scalars().all())


async def test_a_county_admin_sees_their_countys_rows_and_not_another_countys(
    resident: Any, staff_web: Any, people: Live
) -> None:
    _, services = people
    who = await resident("刘淑珍")
    bound = await who.bind(ELDER)
    assert (await who.call("GET", f"/api/v1/archives/{bound['id']}")).status_code == 200
    other = await resident("周某某")
    refused = await other.start(CLOSED_COUNTY)  # 阳谷县 is closed: refused, audited with the archive
    assert refused.status_code == 403
    _, elder_pid = await archive_ids(services, ELDER)
    _, closed_pid = await archive_ids(services, CLOSED_COUNTY)

    county = await staff_web("county", county=COUNTY)
    page = await county.get("/staff/audit")
    assert page.status_code == 200
    actions = [a for a, _ in rows_of(page.text)]
    assert {"bind_start", "bind_code", "bind", "archive_read", "county_set"} <= set(actions)
    assert elder_pid in page.text and "莘县燕店镇卫生院" in page.text
    assert closed_pid not in page.text
    # Newest first: the resident's read came after the binding.
    assert actions.index("archive_read") < actions.index("bind")
    # Never the name or the number of the archive.
    assert person(ELDER)["name"] not in page.text and person(ELDER)["archive_no"] not in page.text

    city = await staff_web("city")
    everything = await city.get("/staff/audit")
    assert elder_pid in everything.text and closed_pid in everything.text
    # What staff of another county (or the city) did is not theirs to see; their own staff's is.
    neighbour = await staff_web("county", county=OTHER_COUNTY)
    assert (await neighbour.get("/staff/audit")).status_code == 200
    colleague = await staff_web("institution", institution=INSTITUTION)
    await colleague.get("/staff/")  # not audited, but an account added: staff_add names its county
    again = await county.get("/staff/audit")
    assert neighbour.public_id not in again.text and city.public_id not in again.text
    assert colleague.public_id in again.text and county.public_id in again.text


async def test_an_archive_outside_the_county_is_the_same_no_such_archive_as_none(
    resident: Any, staff_web: Any, people: Live
) -> None:
    _, services = people
    other = await resident("周某某")
    await other.start(CLOSED_COUNTY)
    _, closed_pid = await archive_ids(services, CLOSED_COUNTY)
    county = await staff_web("county", county=COUNTY)

    outside = await county.get(f"/staff/audit?archive={closed_pid}")
    unknown = await county.get("/staff/audit?archive=AAAAAAAAAAAAAAAA")
    assert outside.status_code == unknown.status_code == 404
    message = re.findall(r'data-test="audit-error">([^<]+)<', outside.text)
    assert message and message == re.findall(r'data-test="audit-error">([^<]+)<', unknown.text)
    assert rows_of(outside.text) == []
    # Typed as a 健康档案编号: the same answer as a number no archive has.
    typed = await county.post("/staff/audit", data={"archive": person(CLOSED_COUNTY)["archive_no"]})
    nobody = await county.post("/staff/audit", data={"archive": f"{COUNTY}00110199999"})
    assert typed.status_code == nobody.status_code == 404
    assert re.findall(r'data-test="audit-error">([^<]+)<', typed.text) == message
    assert re.findall(r'data-test="audit-error">([^<]+)<', nobody.text) == message
    # The misses are audited, without the archive: not even its id when it is not theirs.
    denied = [r for r in await audit_rows(services, "audit_view") if r.result == "denied"]
    assert len(denied) == 4 and all(r.archive_id is None for r in denied)
    assert all(audit.reason_of(r, services.keyring) == "not_found" for r in denied)
    # The city admin finds the same archive.
    city = await staff_web("city")
    assert (await city.get(f"/staff/audit?archive={closed_pid}")).status_code == 200


async def test_an_archive_number_typed_in_the_form_comes_back_as_the_archive_id(
    resident: Any, staff_web: Any, people: Live
) -> None:
    _, services = people
    who = await resident("刘淑珍")
    await who.bind(ELDER)
    teen = await resident("孙小丽")
    await teen.bind(TEEN)
    elder_id, elder_pid = await archive_ids(services, ELDER)
    number = person(ELDER)["archive_no"]
    county = await staff_web("county", county=COUNTY)

    r = await county.post("/staff/audit", data={"archive": number, "action": "bind"}, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["Location"]
    assert number not in location
    assert parse_qs(urlsplit(location).query) == {"archive": [elder_pid], "action": ["bind"]}
    page = await county.get(location)
    assert [a for a, _ in rows_of(page.text)] == ["bind"]
    assert elder_pid in page.text and person(TEEN)["archive_no"] not in page.text
    # The look is audited with the archive's id; its number is nowhere in the log.
    views = [r for r in await audit_rows(services, "audit_view") if r.archive_id == elder_id]
    assert len(views) == 1 and views[0].actor_id == f"staff:{county.public_id}"
    assert views[0].detail == {"action": "bind"}
    async with services.sessions() as s:
        details = [str(d) for d in (await s.scalars(select(LOG.c.detail))).all()]
    assert not any(number in d for d in details)
    # Not in a link typed by hand either.
    by_hand = await county.get(f"/staff/audit?archive={number}")
    assert by_hand.status_code == 400 and "筛选表单" in by_hand.text


async def test_filters_by_actor_action_and_local_dates(resident: Any, staff_web: Any, people: Live) -> None:
    _, services = people
    first = await resident("刘淑珍")
    await first.bind(ELDER)
    second = await resident("孙小丽")
    await second.bind(TEEN)
    elder_id, _ = await archive_ids(services, ELDER)
    teen_id, _ = await archive_ids(services, TEEN)
    county = await staff_web("county", county=COUNTY)

    first_pid = await binder_public_id(services, elder_id)
    mine = await county.get(f"/staff/audit?actor=identity:{first_pid}")
    assert mine.status_code == 200
    assert {a for a, _ in rows_of(mine.text)} >= {"bind_start", "bind"}
    assert f"identity:{first_pid}" in mine.text
    second_pid = await binder_public_id(services, teen_id)
    assert second_pid not in mine.text

    binds = await county.get("/staff/audit?action=bind")
    assert [a for a, _ in rows_of(binds.text)] == ["bind", "bind"]
    system = await county.get("/staff/audit?actor=system")
    assert [a for a, _ in rows_of(system.text)] == ["staff_add", "county_set"]  # the admin's account, the switch
    # The admin's own looks, under their staff id.
    own = await county.get(f"/staff/audit?actor=staff:{county.public_id}")
    assert {a for a, _ in rows_of(own.text)} == {"audit_view"}

    # Local days (Asia/Shanghai), both ends included: 23:30 on the 1st and 00:30 on the 2nd.
    late = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)  # 2026-03-01 23:30 in Shanghai
    early = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)  # 2026-03-02 00:30 in Shanghai
    await put(
        services,
        {"at": late, "action": "archive_read", "archive_id": elder_id, "actor_type": "identity", "actor_id": "1"},
        {"at": early, "action": "archive_read", "archive_id": elder_id, "actor_type": "identity", "actor_id": "1"},
    )
    day2 = await county.get("/staff/audit?from=2026-03-02&to=2026-03-02")
    assert rows_of(day2.text) == [("archive_read", "2026-03-02 00:30:00")]
    both = await county.get("/staff/audit?from=2026-03-01&to=2026-03-02")
    assert [t for _, t in rows_of(both.text)] == ["2026-03-02 00:30:00", "2026-03-01 23:30:00"]
    backwards = await county.get("/staff/audit?from=2026-03-03&to=2026-03-02")
    assert backwards.status_code == 400 and "开始日期不能晚于结束日期" in backwards.text
    bad = await county.get("/staff/audit?actor=someone")
    assert bad.status_code == 400 and "staff:编号" in bad.text


async def test_sealed_reasons_are_shown_opened_to_staff(resident: Any, staff_web: Any, people: Live) -> None:
    who = await resident("钱某某")
    refused = await who.start(NOT_OPENED)
    assert refused.status_code == 403
    county = await staff_web("county", county=COUNTY)
    page = await county.get("/staff/audit?action=bind_start")
    assert "档案未开放给居民（not_opened）" in page.text
    assert "拒绝" in page.text


async def test_pages_of_a_hundred_newest_first_then_the_next(staff_web: Any, people: Live) -> None:
    _, services = people
    at = dt.datetime(2026, 5, 1, 1, 0, tzinfo=dt.UTC)
    await put(
        services,
        *(
            {"at": at + dt.timedelta(minutes=i), "action": "consent", "actor_type": "identity", "actor_id": str(i)}
            for i in range(PER_PAGE + 30)
        ),
    )
    city = await staff_web("city")
    first = await city.get("/staff/audit?action=consent")
    shown = rows_of(first.text)
    assert len(shown) == PER_PAGE and shown[0][1] == "2026-05-01 11:09:00"  # 09:00 + 129 min, local
    next_link = re.search(r'href="(/staff/audit\?[^"]+)" data-test="audit-next"', first.text)
    assert next_link is not None
    second = await city.get(next_link[1].replace("&amp;", "&"))
    rest = rows_of(second.text)
    assert len(rest) == 30 and rest[-1][1] == "2026-05-01 09:00:00"
    assert 'data-test="audit-next"' not in second.text and 'data-test="audit-first"' in second.text


async def test_the_csv_export_has_the_same_rows_a_bom_and_no_formulas(
    resident: Any, staff_web: Any, people: Live
) -> None:
    _, services = people
    who = await resident("刘淑珍")
    await who.bind(ELDER)
    elder_id, elder_pid = await archive_ids(services, ELDER)
    async with services.sessions.begin() as s:  # what a hostile client could get into a row
        audit.record(
            s,
            actor_type="identity",
            actor_id="1",
            action="archive_read",
            archive_id=elder_id,
            result="denied",
            reason="@SUM(1+1)",
            request_id="=HYPERLINK(1)",
            client_ip="+1",
        )
    county = await staff_web("county", county=COUNTY)
    page = await county.get(f"/staff/audit?archive={elder_pid}")
    csv_link = re.search(r'href="(/staff/audit\.csv[^"]*)" data-test="audit-csv"', page.text)
    assert csv_link is not None
    r = await county.get(csv_link[1].replace("&amp;", "&"))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["时间", "操作者", "操作"]
    # The same rows as the page, in the same order (action code, local time), and the page's own
    # look above them; not the export's own row.
    exported = [(line[3], line[0]) for line in table[1:]]
    assert exported[0][0] == "audit_view" and exported[1:] == rows_of(page.text)
    assert [a for a, _ in exported[1:]] == ["archive_read", "bind", "bind_code", "bind_start"]
    assert all(line[4] == elder_pid for line in table[1:])
    assert person(ELDER)["name"] not in r.text and person(ELDER)["archive_no"] not in r.text
    hostile = next(line for line in table[1:] if line[9].endswith("HYPERLINK(1)"))
    assert (hostile[7], hostile[9], hostile[10]) == ("'@SUM(1+1)", "'=HYPERLINK(1)", "'+1")
    # The export is audited, with the archive asked about.
    exports = await audit_rows(services, "audit_export")
    assert [(e.actor_id, e.archive_id, e.result) for e in exports] == [(f"staff:{county.public_id}", elder_id, "ok")]


async def test_institution_staff_may_not_read_the_audit_log(staff_web: Any, people: Live) -> None:
    web = await staff_web("institution", institution=INSTITUTION)
    assert (await web.get("/staff/audit")).status_code == 403
    assert (await web.get("/staff/audit.csv")).status_code == 403
    assert (await web.post("/staff/audit", data={"action": "bind"})).status_code == 403


async def test_the_page_fits_a_small_phone_and_takes_an_archive_number_in_a_real_browser(
    browser: Any,  # noqa: F811
    resident: Any,
    staff_web: Any,
    people: Live,
) -> None:
    from playwright.async_api import expect

    base, services = people
    who = await resident("刘淑珍")
    await who.bind(ELDER)
    _, elder_pid = await archive_ids(services, ELDER)
    county = await staff_web("county", county=COUNTY)
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    await context.add_cookies([{"name": "wb_staff", "value": county.client.cookies["wb_staff"], "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)
    try:
        await page.goto(base + "/staff/audit")
        await expect(page.locator('[data-test="audit-table"]')).to_be_visible()
        await page.screenshot(path="/tmp/staff_audit.png", full_page=True)
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
        await page.fill('input[name="archive"]', person(ELDER)["archive_no"])
        await page.click('[data-test="audit-form"] button[type="submit"]')
        await expect(page.locator('[data-test="audit-archive"]').first).to_have_text(elder_pid)
        assert person(ELDER)["archive_no"] not in page.url and f"archive={elder_pid}" in page.url
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
        assert problems == []
    finally:
        await context.close()


async def test_dates_far_outside_the_calendar_say_so_instead_of_failing(staff_web, people: Live) -> None:
    web = await staff_web("county", county=COUNTY)
    for query in ("to=9999-12-31", "from=0001-01-01"):
        for path in ("/staff/audit", "/staff/audit.csv"):
            r = await web.get(f"{path}?{query}")
            assert r.status_code == 400, (path, query, r.status_code)
            assert "超出范围" in r.text
