"""The bind pages in a real (headless) browser on a phone-sized screen: agree to the notice, fill the
form by tapping and typing, get a mismatch (what was typed comes back), correct it, type the code
from the SMS and see the archive on "我的档案". Needs /usr/bin/chromium, playwright and a Chinese
font (see ``browser`` in conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from binding.conftest import ELDER, people, person

from .conftest import Live
from .test_bind_pages import Visitor

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture

SCREENSHOT = Path("/tmp/bind_form.png")


async def test_bind_an_archive_by_tapping_and_typing_on_a_phone(browser: Any, people: Live) -> None:
    from playwright.async_api import expect

    base, _ = people
    elder = person(ELDER)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20) as http:
        # The WeChat login over HTTP (follow, welcome link, authorize), then its cookie in the browser.
        visitor = Visitor(base, http)
        await visitor.follow_and_log_in("刘阿姨")
        session = http.cookies.get("wb_session")
        assert session

        context = await browser.new_context(
            locale="zh-CN",
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        await context.add_cookies([{"name": "wb_session", "value": session, "url": base}])
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

        def on_console(message: Any) -> None:
            # A form answered 400 makes Chromium log "Failed to load resource": that one is expected.
            if message.type == "error" and "Failed to load resource" not in message.text:
                problems.append(message.text)

        page.on("console", on_console)
        try:
            # The privacy notice first, then the form.
            await page.goto(base + "/r/bind")
            await expect(page.locator("h1")).to_have_text("健康档案查询隐私说明")
            await page.get_by_role("button", name="同意并继续").click()
            await expect(page.locator("h1")).to_have_text("绑定健康档案")
            assert page.url == base + "/r/bind"
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # Large type and big targets on a phone: nothing narrower than the screen overflows it.
            sizes = await page.evaluate(
                """() => ({
                    input: parseFloat(getComputedStyle(document.getElementById("name")).fontSize),
                    hint: parseFloat(getComputedStyle(document.querySelector(".ui-hint")).fontSize),
                    button: document.querySelector(".ui-btn--primary").getBoundingClientRect().height,
                    choice: document.querySelector(".ui-choice span").getBoundingClientRect().height,
                    overflow: document.documentElement.scrollWidth > window.innerWidth,
                })"""
            )
            assert sizes["input"] >= 18 and sizes["hint"] >= 18, sizes
            assert sizes["button"] >= 48 and sizes["choice"] >= 48 and not sizes["overflow"], sizes

            # A typo in the name: the message, and everything typed is still there to correct.
            await page.get_by_role("radio", name="本人").click()
            name = page.get_by_label("姓名")
            await name.click()
            await name.press_sequentially("刘淑芬")
            await page.get_by_label("身份证号").click()
            await page.keyboard.type(elder["id_number"])
            await page.get_by_label("手机号").click()
            await page.keyboard.type(elder["phone"])
            await page.get_by_role("button", name="获取验证码").click()
            await expect(page.locator('[data-test="form-error"]')).to_contain_text("信息不一致")
            await expect(page.get_by_label("身份证号")).to_have_value(elder["id_number"])
            await expect(page.get_by_label("手机号")).to_have_value(elder["phone"])
            await expect(name).to_have_value("刘淑芬")

            await name.fill("")
            await name.press_sequentially(elder["name"])
            await page.get_by_role("button", name="获取验证码").click()
            await expect(page.locator("h1")).to_have_text("输入短信验证码")
            await expect(page.locator('[data-test="sent-to"]')).to_have_text("139****0001")

            code = await visitor.last_code(elder["phone"])
            await page.get_by_label("6位数字验证码").click()
            await page.keyboard.type(code)
            await page.get_by_role("button", name="提交").click()

            await expect(page.locator('[data-test="notice"]')).to_contain_text("绑定成功")
            card = page.locator('[data-test="archive"]')
            await expect(card).to_have_count(1)
            await expect(card).to_contain_text("刘**")
            await expect(card).to_contain_text("本人")
            assert page.url.startswith(base + "/r/home")
            # The typed ID number and phone are gone from the tab's storage.
            assert await page.evaluate("() => sessionStorage.length") == 0
            assert problems == []
        finally:
            await context.close()
