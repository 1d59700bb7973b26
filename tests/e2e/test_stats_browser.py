"""统计 in a real (headless) browser, on a desktop (1280 px) and a small phone (375 px): the table and
the chart of 开放率 and 绑定率 drawn, readable, nothing scrolling sideways at 375 px (the wide table
scrolls inside its own box), the date form working, and no console errors (the CSP would report an
inline script or style). Needs /usr/bin/chromium, playwright and a Chinese font (see ``browser``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from binding.conftest import people
from staff.conftest import staff_session

from .conftest import Live, console_problems

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture

SHOTS = Path("/tmp/staff_stats")


@pytest.mark.parametrize("width", [1280, 375])
async def test_the_statistics_page_and_its_chart_fit_a_desktop_and_a_phone(
    browser: Any, people: Live, width: int
) -> None:
    from playwright.async_api import expect

    base, services = people
    added = await services.staff.add(name="赵主任", phone="13906351234", role="city")
    session = await staff_session(services, added.public_id)
    SHOTS.mkdir(exist_ok=True)
    context = await browser.new_context(locale="zh-CN", viewport={"width": width, "height": 900})
    await context.add_cookies([{"name": "wb_staff", "value": session, "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems = console_problems(page)
    try:
        await page.goto(base + "/staff/stats")
        table = page.locator('[data-test="stats-table"]')
        await expect(table).to_be_visible()
        await expect(table.locator("tr.st-stats-city")).to_contain_text("全市合计")
        chart = page.locator('[data-test="stats-chart"]')
        await expect(chart).to_be_visible()
        label = await chart.get_attribute("aria-label")
        assert label and "莘县 开放率 85.7%" in label and "阳谷县 开放率 0.0%" in label
        box = await chart.bounding_box()
        assert box and 300 <= box["width"] <= min(width, 480), box
        # The bars are drawn: the 莘县 开放率 bar is 85.7% of the plot.
        widths = await chart.locator("rect[rx]").evaluate_all("rs => rs.map(r => r.getBBox().width)")
        assert max(widths) == pytest.approx(287 * 6 / 7, abs=0.2)
        await page.screenshot(path=str(SHOTS / f"stats_{width}.png"), full_page=True)
        if width == 375:
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
            wrap = page.locator(".st-table-wrap")
            assert await wrap.evaluate("el => el.scrollWidth > el.clientWidth")  # the table scrolls in its box

        day = services.clock.today() - dt.timedelta(days=6)
        await page.fill('input[name="from"]', day.isoformat())
        await page.click('[data-test="stats-form"] button[type="submit"]')
        await expect(page.locator('[data-test="stats-period"]')).to_contain_text(f"统计期间 {day.isoformat()}")
        assert f"from={day.isoformat()}" in page.url
        href = await page.locator('[data-test="stats-xlsx"]').get_attribute("href")
        assert href and href.startswith("/staff/stats.xlsx?") and f"from={day.isoformat()}" in href
        if width == 375:
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
        assert problems == []
    finally:
        await context.close()
