"""The staff inbox (居民留言) in a real (headless) browser, on a phone (375 px) and a desktop
(1280 px): the list with an overdue question highlighted, a question with a long unbroken line,
and answering it through the form; and the resident's side on a phone — asking from the archive
and reading the answer. Nothing scrolls sideways, no console errors (the Content-Security-Policy
would report an inline script or style). Screenshots are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from binding.conftest import ELDER, people
from sqlalchemy import select
from staff.conftest import INSTITUTION, staff_session

from wechat_backend.clock import FixedClock
from wechat_backend.db.models import Feedback

from .conftest import Live, console_problems
from .test_archive_browser import SMALLEST_TEXT
from .test_bind_pages import Visitor

__all__ = ["people"]

SHOTS = Path("/tmp/inbox_pages")
LONG = "留言 我家老人血压一直偏高，想问问随访时间能不能改到周末？" + "https://example.cn/" + "a" * 160
SIZES = {"phone": (375, 667), "desktop": (1280, 800)}


@pytest.fixture
async def questions(people: Live, clock: FixedClock) -> tuple[str, str, list[str]]:
    """(base, staff session id, question ids oldest first): a follower of the institution's QR code
    asked twice by message, the first more than 48 hours ago."""
    base, services = people
    async with httpx.AsyncClient(trust_env=False, timeout=20) as http:

        async def control(path: str, body: Any) -> Any:
            r = await http.post(f"{base}/sandbox/api/{path}", json=body)
            assert r.status_code < 300, r.text
            return r.json()

        openid = (await control("users", {"nickname": "扫码居民"}))["openid"]
        await control(f"users/{openid}/scan", {"scene": INSTITUTION})
        assert "已收到您的留言" in (await control(f"users/{openid}/text", {"content": "留言 第一个问题"}))["reply"]
        clock.advance(hours=services.settings.staff.feedback_overdue_hours + 2)
        assert "已收到您的留言" in (await control(f"users/{openid}/text", {"content": LONG}))["reply"]
    added = await services.staff.add(
        name="王医生", phone="13912345678", role="institution", institution_code=INSTITUTION
    )
    session = await staff_session(services, added.public_id)
    async with services.sessions() as s:
        ids = list((await s.scalars(select(Feedback.public_id).order_by(Feedback.id))).all())
    return base, session, ids


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_inbox_reads_and_answers_without_sideways_scrolling(
    browser: Any, questions: tuple[str, str, list[str]], size: str
) -> None:
    from playwright.async_api import expect

    base, session, (old, new) = questions
    width, height = SIZES[size]
    SHOTS.mkdir(exist_ok=True)
    context = await browser.new_context(
        locale="zh-CN",
        viewport={"width": width, "height": height},
        is_mobile=size == "phone",
        has_touch=size == "phone",
    )
    await context.add_cookies([{"name": "wb_staff", "value": session, "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)

    async def check(name: str) -> None:
        await page.screenshot(path=str(SHOTS / f"{size}-{name}.png"), full_page=True)
        scroll = await page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll <= width, f"{size} {name}: {scroll} px wide, scrolls sideways"

    try:
        await page.goto(base + "/staff/inbox")
        rows = page.locator('[data-test="inbox-row"]')
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-feedback", new)  # newest first
        overdue = page.locator('[data-overdue="1"]')
        await expect(overdue).to_have_count(1)
        await expect(overdue).to_have_attribute("data-feedback", old)
        await expect(overdue).to_contain_text("超过 48 小时未回复")
        red = await overdue.evaluate("el => getComputedStyle(el).backgroundColor")
        plain = await rows.first.evaluate("el => getComputedStyle(el).backgroundColor")
        assert red == "rgb(255, 240, 240)" and plain != red
        await expect(page.locator('[data-test="overdue-summary"]')).to_contain_text("1 条")
        await check("list")

        await rows.first.locator("a").click()
        await expect(page.locator('[data-test="question-text"]')).to_contain_text("a" * 40)
        await expect(page.locator('[data-test="privacy-warning"]')).to_contain_text("身份证号")
        await check("question")

        await page.fill("#reply", "可以，请周末上午来卫生院，或拨打咨询电话预约。")
        await page.get_by_role("button", name="发送回复").click()
        await expect(page.locator('[data-test="answered-notice"]')).to_be_visible()
        await expect(page.locator('[data-test="answer-text"]')).to_contain_text("周末上午")
        await expect(page.locator('[data-test="delivery"]')).to_have_attribute("data-delivery", "custom")
        await check("answered")

        await page.goto(base + "/staff/inbox?status=open")
        await expect(page.locator('[data-test="inbox-row"]')).to_have_count(1)
        await check("open")
        assert problems == []
    finally:
        await context.close()


async def test_a_resident_asks_from_the_archive_and_reads_the_answer_on_a_small_phone(
    browser: Any, people: Live, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    base, services = people
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20) as http:
        v = Visitor(base, http)
        await v.follow_and_log_in("刘阿姨")
        await v.bind(ELDER)
        session = http.cookies.get("wb_session")
    added = await services.staff.add(
        name="王医生", phone="13912345679", role="institution", institution_code=INSTITUTION
    )
    staff_cookie = await staff_session(services, added.public_id)
    SHOTS.mkdir(exist_ok=True)
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    await context.add_cookies([{"name": "wb_session", "value": session, "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)

    async def check(name: str) -> None:
        await page.screenshot(path=str(SHOTS / f"resident-{name}.png"), full_page=True)
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375, name
        assert await page.evaluate(SMALLEST_TEXT) >= 18, name

    try:
        await page.goto(base + "/r/home")
        await page.locator('a[href^="/r/archives/"]').first.click()
        await page.locator('[data-test="ask"]').click()
        await expect(page.locator('[data-test="feedback-to"]')).to_have_text("莘县燕店镇卫生院")
        await expect(page.locator('[data-test="consult-phone"]')).to_have_text("0635-7123456")
        await check("form")
        await page.fill("#text", "请问下次随访能不能改到周末？")
        await page.get_by_role("button", name="提交留言").click()
        await expect(page.locator('[data-test="notice"]')).to_contain_text("留言已提交")
        await expect(page.locator('[data-test="waiting"]')).to_be_visible()
        await check("asked")
        public_id = page.url.split("/r/feedback/")[1].split("?")[0]

        async with httpx.AsyncClient(trust_env=False, timeout=20, cookies={"wb_staff": staff_cookie}) as staff:
            form = await staff.get(f"{base}/staff/inbox/{public_id}")
            xsrf = staff.cookies.get("_xsrf")
            done = await staff.post(
                f"{base}/staff/inbox/{public_id}", data={"_xsrf": xsrf, "reply": "可以，周末上午来卫生院。"}
            )
            assert form.status_code == 200 and done.status_code == 303, done.text

        await page.goto(base + "/r/feedback")
        await expect(page.locator('[data-test="feedback-item"]')).to_have_attribute("data-status", "answered")
        await check("list")
        await page.locator('[data-test="feedback-item"] a').click()
        await expect(page.locator('[data-test="answer"]')).to_contain_text("周末上午")
        await check("answer")
        assert problems == []
    finally:
        await context.close()
