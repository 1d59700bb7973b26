"""The sandbox phone page in a real (headless) browser against the live app: pick a user, follow,
read the welcome, tap the menu and land, signed in through WeChat's silent authorization, on our
own page inside the phone's web view; bind an archive there reading the code from the SMS inbox
pulled down over the page; reload and find the chat as it was. Needs /usr/bin/chromium, the
playwright package and a Chinese font (see ``browser`` in conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from binding.conftest import ELDER, people, person

from wechat_backend.wechat.menu import push_menu

from .conftest import Live, console_problems

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture

SCREENSHOT = Path("/tmp/phone_bind_sms.png")  # the phone with a bind page open and the SMS inbox pulled down

# Draws each character on a canvas: a missing glyph ("tofu") draws the same box for every character.
GLYPHS_JS = """(chars) => chars.map((ch) => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext("2d");
  ctx.font = "40px sans-serif";
  ctx.fillStyle = "#000";
  ctx.fillText(ch, 2, 40);
  const data = ctx.getImageData(0, 0, 48, 48).data;
  let ink = 0, hash = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i]) ink++; hash = (hash * 31 + data[i]) | 0; }
  return [ink, hash];
})"""


async def test_phone_page_follow_menu_and_our_signed_in_page(browser: Any, live: Live, tmp_path: Path) -> None:
    from playwright.async_api import expect

    base, services = live
    await push_menu(services.settings, services.wechat)  # as `wechat-backend menu push` does

    context = await browser.new_context(locale="zh-CN", viewport={"width": 420, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)
    try:
        await page.goto(base + "/sandbox/")
        await expect(page.locator("#pane-users")).to_be_visible()  # nobody chosen yet

        # A new simulated user, used at once: the chat pane, not following, no menu yet.
        await page.locator("#user-nickname").fill("张阿姨")
        await page.locator("#user-create").click()
        await expect(page.locator("#current-user")).to_have_text("张阿姨")
        await expect(page.locator("#pane-chat")).to_be_visible()
        await expect(page.locator("#follow-state")).to_have_text("未关注")
        await expect(page.locator("#menu")).to_be_hidden()
        assert await page.locator("#user-select").input_value() != ""

        # Follow: the welcome comes back from our /wechat, with the link to our page.
        await page.locator("#follow").click()
        await expect(page.locator("#follow-state")).to_have_text("已关注")
        welcome = page.locator('[data-test="reply"]')
        await expect(welcome).to_have_count(1)
        await expect(welcome).to_contain_text("您好，欢迎关注！")
        # The link shows as short words, not the address; tapping it opens the address.
        home_link = welcome.locator('[data-test="reply-link"]')
        await expect(home_link).to_have_text("打开我的档案")
        await expect(home_link).to_have_attribute("data-url", base + "/r/home")
        await expect(welcome).not_to_contain_text("http")

        # The pushed menu: our page, a CLICK item, and a group of CLICK items.
        menu = page.locator("#menu")
        await expect(menu).to_be_visible()
        await expect(menu.locator('[data-test="menu-item"][data-name="我的档案"]')).to_have_attribute(
            "data-url", base + "/r/home"
        )
        assert await menu.locator('[data-test="menu-group"]').evaluate_all("gs => gs.map(g => g.dataset.name)") == [
            "服务"
        ]

        # A top-level CLICK item, then one inside the group: each answer appears in the chat.
        await menu.locator('[data-test="menu-item"][data-key="FOLLOWUP"]').click()
        await expect(page.locator('[data-test="reply"]')).to_have_count(2)
        await expect(page.locator('[data-test="reply"]').last).to_contain_text("您还没有绑定健康档案")
        help_item = menu.locator('[data-test="menu-item"][data-key="HELP"]')
        await expect(help_item).to_be_hidden()
        await menu.locator('[data-test="menu-group"][data-name="服务"]').click()
        await help_item.click()
        await expect(page.locator('[data-test="reply"]')).to_have_count(3)
        await expect(page.locator('[data-test="reply"]').last).to_contain_text("回复下面的词语即可使用")

        chat = tmp_path / "chat.png"
        await page.screenshot(path=str(chat))
        assert chat.stat().st_size > 10_000

        # The VIEW item opens our page in the web view; WeChat's snsapi_base login is silent there.
        await menu.locator('[data-test="menu-item"][data-name="我的档案"]').click()
        await expect(page.locator("#webview")).to_be_visible()
        await expect(page.locator("#webview-title")).to_have_text("我的档案")
        inside = page.frame_locator("#webview-frame")
        await expect(inside.locator("h1")).to_have_text("您已通过微信登录")
        await expect(inside.locator("body")).to_contain_text("欢迎使用居民电子健康档案查询")
        frame = page.frame(name="webview")
        # (The browser carries the authorize URL's "#wechat_redirect" through the redirects that follow.)
        assert frame is not None and frame.url.split("#")[0] == base + "/r/home"
        cookies = {c["name"]: c for c in await context.cookies(base)}
        assert cookies["wb_session"]["httpOnly"] and cookies["wb_session"]["path"] == "/"

        # What is on screen is Chinese, and it renders as glyphs, not tofu boxes.
        shot = tmp_path / "phone.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        text = await page.locator('[data-test="phone"]').inner_text()
        assert "居民健康档案（沙箱）" in text and "已关注" in text and "我的档案" in text
        glyphs = await page.evaluate(GLYPHS_JS, ["档", "案", "随", "访"])
        assert all(ink > 0 for ink, _ in glyphs), glyphs
        assert len({h for _, h in glyphs}) == len(glyphs), f"CJK characters all draw alike (tofu?): {glyphs}"

        assert problems == []
    finally:
        await context.close()


async def test_bind_in_the_phone_reading_the_code_from_the_inbox_over_the_page_then_reload(
    browser: Any, people: Live
) -> None:
    from playwright.async_api import expect

    base, services = people
    await push_menu(services.settings, services.wechat)
    elder = person(ELDER)
    context = await browser.new_context(locale="zh-CN", viewport={"width": 420, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        await page.goto(base + "/sandbox/")
        await page.locator("#user-nickname").fill("刘阿姨")
        await page.locator("#user-create").click()
        await page.locator("#follow").click()
        replies = page.locator('[data-test="reply"]')
        await expect(replies).to_have_count(1)

        # The welcome's link opens our page in the web view, signed in; its title is the page's.
        await replies.first.locator('[data-test="reply-link"]').click()
        await expect(page.locator("#webview")).to_be_visible()
        inside = page.frame_locator("#webview-frame")
        await expect(inside.locator("h1")).to_have_text("您已通过微信登录")
        await expect(page.locator("#webview-title")).to_have_text("我的档案")
        await expect(page.locator('[data-test="webview-sms-badge"]')).to_be_hidden()

        # Bind: the notice, then the form (for whom first), then the code page.
        await inside.get_by_role("link", name="绑定档案").first.click()
        await inside.get_by_role("button", name="同意并继续").click()
        await expect(inside.locator("legend")).to_have_text("为谁绑定？")
        await inside.get_by_role("radio", name="本人").check()
        await inside.get_by_label("姓名").fill(elder["name"])
        await inside.get_by_label("身份证号").fill(elder["id_number"])
        await inside.get_by_label("手机号").fill(elder["phone"])
        await inside.get_by_role("button", name="获取验证码").click()
        await expect(inside.locator("h1")).to_have_text("输入短信验证码")

        # The SMS arrives: a badge on the web view's 短信 button; the inbox pulls down over the page.
        badge = page.locator('[data-test="webview-sms-badge"]')
        await expect(badge).to_have_text("1")
        await page.locator('[data-test="webview-sms"]').click()
        sheet = page.locator('[data-test="sms-sheet"]')
        await expect(sheet).to_be_visible()
        await expect(badge).to_be_hidden()
        code = await sheet.locator('[data-test="sms-code"]').first.inner_text()
        assert code.isdigit() and len(code) == 6
        await expect(sheet.locator('[data-test="sheet-sms-item"]').first).to_contain_text(elder["phone"])
        await expect(inside.locator("h1")).to_have_text("输入短信验证码")  # the page is still there below
        await page.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        await page.locator('[data-test="sms-sheet-close"]').click()
        await expect(sheet).to_be_hidden()
        await inside.get_by_label("6位数字验证码").fill(code)
        await inside.get_by_role("button", name="提交").click()
        await expect(inside.locator('[data-test="notice"]')).to_contain_text("绑定成功")
        await page.locator("#webview-close").click()

        # A reload (or a server restart: the sandbox keeps its state) shows the same chat.
        before = await page.locator("#chat-log").inner_text()
        await page.reload()
        await expect(page.locator("#current-user")).to_have_text("刘阿姨")
        await expect(page.locator('[data-test="reply"]')).to_have_count(1)
        await expect(page.locator('[data-test="reply-link"]')).to_have_text("打开我的档案")
        assert await page.locator("#chat-log").inner_text() == before
        assert problems == []
    finally:
        await context.close()
