"""The 工作台's desktop login in a real (headless) browser, wide and phone-narrow: the login page shows
the QR code; the linked staff member scans it in WeChat (the sandbox) and the page says to confirm
on the phone; the member opens the message's link in WeChat (a phone-sized browser holding the
member's WeChat login) and taps 确认登录; the desktop page, polling, lands on the 工作台's home by
itself — or, after 取消, says the login was refused. Nothing scrolls sideways at 375 px. Needs
/usr/bin/chromium, playwright and a Chinese font (see ``browser`` in conftest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from binding.conftest import people
from staff.test_login import DESKTOP_BROWSER, DESKTOP_UA, WECHAT_UA, World, announced_link, answer, linked_member

from wechat_backend.staff.login import QR_REFUSED

from .conftest import Live, console_problems

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture


@pytest.mark.parametrize("width", [1280, 375])
async def test_the_desktop_login_page_logs_in_when_the_linked_member_scans(
    browser: Any, people: Live, width: int
) -> None:
    from playwright.async_api import expect

    world = World(people)
    try:
        member, phone = await linked_member(world)  # linked in WeChat, SMS factor fresh
        # A desktop Chrome on Windows, as the member's phone will be told.
        desk = {"locale": "zh-CN", "viewport": {"width": width, "height": 900}, "user_agent": DESKTOP_UA}
        context = await browser.new_context(**desk)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems = console_problems(page)
        try:
            await page.goto(world.base + "/staff/login?next=/staff/")
            qr = page.locator("img.st-qr")
            await expect(qr).to_be_visible()
            assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")  # the SVG decoded
            box = await qr.bounding_box()
            assert box and 150 <= box["width"] <= width
            await expect(page.locator("[data-qr-status]")).to_contain_text("等待扫码")
            await page.screenshot(path=str(Path(f"/tmp/staff_login_{width}.png")), full_page=True)
            if width == 375:
                overflow = await page.evaluate("() => document.documentElement.scrollWidth")
                assert overflow <= 375, overflow

            token = await page.locator("[data-qr-login]").get_attribute("data-token")
            assert token and re.fullmatch(r"[0-9A-Za-z_-]{16,64}", token)
            link = await announced_link(world, phone, token)
            await expect(page.locator("[data-qr-status]")).to_contain_text("确认登录")  # scanned: confirm on the phone
            await page.wait_for_timeout(2500)  # another round of polling: still not logged in
            assert page.url.startswith(world.base + "/staff/login")

            # The phone: the link opens in WeChat, where the member is logged in through the account.
            session = phone.client.cookies.get("wb_session")
            assert session
            mobile = await browser.new_context(
                locale="zh-CN", viewport={"width": 375, "height": 800}, user_agent=WECHAT_UA, is_mobile=True
            )
            await mobile.add_cookies([{"name": "wb_session", "value": session, "url": world.base}])
            try:
                confirm = await mobile.new_page()
                confirm.set_default_timeout(15_000)
                phone_problems = console_problems(confirm)
                await confirm.goto(link)
                await expect(confirm.locator('[data-test="desktop-browser"]')).to_have_text(DESKTOP_BROWSER)
                await expect(confirm.locator('[data-test="desktop-ip"]')).to_contain_text("127.0.*.*")
                assert await confirm.evaluate("() => document.documentElement.scrollWidth") <= 375
                await confirm.screenshot(path=str(Path(f"/tmp/staff_login_confirm_{width}.png")), full_page=True)
                await confirm.get_by_role("button", name="确认登录").click()
                await expect(confirm.locator('[data-test="confirm-done"]')).to_be_visible()
                assert phone_problems == []
            finally:
                await mobile.close()

            await expect(page.locator('[data-test="staff-tiles"]')).to_be_visible()
            assert page.url == world.base + "/staff/"
            await expect(page.locator('[data-test="staff-who"]')).to_contain_text(member.name)
            if width == 375:
                assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
            assert problems == []
        finally:
            await context.close()
    finally:
        for client in world.clients:
            await client.aclose()


async def test_a_login_cancelled_on_the_phone_is_refused_on_the_desktop(browser: Any, people: Live) -> None:
    from playwright.async_api import expect

    world = World(people)
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    try:
        _, phone = await linked_member(world)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems = console_problems(page)
        await page.goto(world.base + "/staff/login?next=/staff/")
        token = await page.locator("[data-qr-login]").get_attribute("data-token")
        assert token
        link = await announced_link(world, phone, token)
        r = await answer(phone, link, "cancel")  # on the phone, over HTTP
        assert 'data-test="confirm-cancelled"' in r.text
        await expect(page.locator("[data-qr-message]")).to_have_text(QR_REFUSED)
        await expect(page.get_by_role("link", name="刷新二维码")).to_be_visible()
        await expect(page.locator("[data-qr-status]")).to_be_hidden()
        assert page.url.startswith(world.base + "/staff/login")
        assert not [c for c in await context.cookies() if c["name"] == "wb_staff"]
        assert problems == []
    finally:
        await context.close()
        for client in world.clients:
            await client.aclose()


async def test_an_unscanned_qr_code_runs_out_and_offers_a_new_one(browser: Any, people: Live) -> None:
    from playwright.async_api import expect

    world = World(people)
    context = await browser.new_context(locale="zh-CN", viewport={"width": 375, "height": 800})
    try:
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems = console_problems(page)
        await page.goto(world.base + "/staff/login?next=/staff/")
        await expect(page.locator("img.st-qr")).to_be_visible()
        world.services.clock.advance(minutes=5)  # the server's clock: the next poll hears "expired"
        refresh = page.get_by_role("link", name="刷新二维码")
        await expect(refresh).to_be_visible()
        await expect(page.locator("[data-qr-status]")).to_be_hidden()
        old = await page.locator("[data-qr-login]").get_attribute("data-token")
        await refresh.click()
        await expect(page.locator("img.st-qr")).to_be_visible()
        assert await page.locator("[data-qr-login]").get_attribute("data-token") != old
        assert problems == []
    finally:
        await context.close()
        for client in world.clients:
            await client.aclose()


async def test_the_first_login_in_wechat_by_typing_on_a_phone(browser: Any, people: Live) -> None:
    from playwright.async_api import expect

    world = World(people)
    member = await world.member()
    phone = await world.wechat_user()
    await phone.go("/staff/login?next=/staff/")  # WeChat's login over HTTP; its cookie goes to the browser
    session = phone.client.cookies.get("wb_session")
    assert session
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 800}, user_agent=WECHAT_UA, is_mobile=True, has_touch=True
    )
    await context.add_cookies([{"name": "wb_session", "value": session, "url": world.base}])
    try:
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems = console_problems(page)
        await page.goto(world.base + "/staff/login?next=/staff/")
        field = page.get_by_label("手机号")
        await expect(field).to_be_visible()
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
        await field.fill(member.phone)
        await page.get_by_role("button", name="获取验证码").click()
        await expect(page.locator('[data-test="sent-to"]')).to_have_text(f"{member.phone[:3]}****{member.phone[-4:]}")
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
        await page.get_by_label("6位数字验证码").fill(await world.last_code(member.phone))
        await page.get_by_role("button", name="登录", exact=True).click()
        await expect(page.locator('[data-test="staff-tiles"]')).to_be_visible()
        assert page.url == world.base + "/staff/"
        assert problems == []
    finally:
        await context.close()
        for client in world.clients:
            await client.aclose()
