"""The archive in a real (headless) browser at 375×667, the size of the smallest phones still in use:
the cover, a 高血压随访 record and the trends. No horizontal scrolling, body text at least 18 px
(the 适老化 guideline), the values that matter on screen, and no console errors (the
Content-Security-Policy would report an inline script or style there). Screenshots are kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from binding.conftest import ELDER, people
from ingest_lines import write
from records.conftest import ELDER_RECORDS

from .conftest import Live, console_problems
from .test_bind_pages import Visitor

__all__ = ["people"]

SHOTS = Path("/tmp/archive_pages")
# The smallest text of any element that holds text, outside the charts' own labels.
SMALLEST_TEXT = """() => {
  const sizes = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || el.closest(".msg__ref")) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own && el.offsetParent !== null) sizes.push(parseFloat(getComputedStyle(el).fontSize));
  }
  return Math.min(...sizes);
}"""


@pytest.fixture
async def signed_in(people: Live, tmp_path: Path) -> tuple[str, str, str]:
    """(base, session cookie, cover path) of a resident who bound 刘淑珍's archive, records imported."""
    base, services = people
    report = await services.ingest.import_file(write(tmp_path / "records.jsonl", ELDER_RECORDS))
    assert report.exit_code == 0
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20) as http:
        v = Visitor(base, http)
        await v.follow_and_log_in("刘阿姨")
        home = await v.bind(ELDER)
        (cover,) = re.findall(r'href="(/r/archives/[^"/?]+)"', home.text)
        session = http.cookies.get("wb_session")
    assert session
    return base, session, cover


async def test_cover_record_and_trends_read_well_on_a_small_phone(
    browser: Any, signed_in: tuple[str, str, str]
) -> None:
    from playwright.async_api import expect

    base, session, cover = signed_in
    SHOTS.mkdir(exist_ok=True)
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    await context.add_cookies([{"name": "wb_session", "value": session, "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)

    async def check(name: str) -> None:
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"{name}: {width} px wide, scrolls sideways"
        assert await page.evaluate(SMALLEST_TEXT) >= 18, name

    try:
        await page.goto(base + cover)
        await expect(page.locator("h1")).to_contain_text("刘**")
        await expect(page.locator('[data-test="next-due"]')).to_contain_text("2027-01-12")
        await expect(page.locator('[data-section="hypertension"]')).to_contain_text("3 条")
        await check("cover")

        await page.locator('[data-section="hypertension"] a').click()
        await page.locator('[data-test="record"] a').first.click()
        await expect(page.locator("h1")).to_have_text("高血压患者随访")
        await expect(page.locator('[data-test="prominent"]')).to_contain_text("2027-01-12")
        await expect(page.locator("main")).to_contain_text("132")
        await check("hypertension_record")

        await page.goto(base + cover + "/trends")
        chart = page.locator('[data-test="series"][data-key="sbp"] svg')
        await expect(chart).to_be_visible()
        assert "收缩压" in (await chart.get_attribute("aria-label") or "")
        box = await chart.bounding_box()
        assert box is not None and box["width"] <= 375
        await check("trends")
        assert problems == []
    finally:
        await context.close()
