"""The archive as pages, over HTTP against the real app with the sandbox: from 我的档案 to the
cover, a section, a record, the trends, who read it and the help page; a hidden archive shows the
one text; no page carries a full ID number, phone or anything a resident may not see."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from binding.conftest import ELDER, TEEN, people
from ingest_lines import write
from records.conftest import ELDER_RECORDS, TEEN_RECORDS

from .conftest import Live
from .test_bind_pages import Visitor, Visitors, hidden_fields, visitors

__all__ = ["people", "visitors"]

FORBIDDEN = ("抗痨", "severe_mental", "F20", "结核", "精神")


@pytest.fixture
async def with_records(people: Live, tmp_path: Path) -> Live:
    _, services = people
    report = await services.ingest.import_file(write(tmp_path / "records.jsonl", ELDER_RECORDS + TEEN_RECORDS))
    assert report.exit_code == 0, report
    return people


def links(page: str, prefix: str) -> list[str]:
    """The links to ``prefix<id>`` itself (not to its sub-pages)."""
    return re.findall(rf'href="({re.escape(prefix)}[^"/?]+)"', page)


async def test_from_my_archives_to_a_record_and_back(with_records: Live, visitors: Visitors) -> None:
    v: Visitor = await visitors("刘阿姨")
    home = await v.bind(ELDER)
    assert "最近记录：高血压患者随访 · 2026-10-12" in home.text
    assert "下次高血压患者随访：<strong>2027-01-12</strong>" in home.text
    (cover_link,) = links(home.text, "/r/archives/")
    first_archive_page = len(v.pages)  # the consent notice before it names the withheld categories in general
    cover = await v.go(cover_link)
    assert cover.status_code == 200 and "刘**" in cover.text and "莘县燕店镇卫生院" in cover.text
    assert "下次随访和检查" in cover.text and "2027-01-12" in cover.text
    assert "高血压随访" in cover.text and "3 条" in cover.text and "健康体检" in cover.text

    section = await v.go(cover_link + "/records?kind=hypertension")
    items = re.findall(r'href="(/r/records/[^"]+)"', section.text)
    assert len(items) == 3
    record = await v.go(items[0])
    assert record.status_code == 200 and "高血压患者随访" in record.text and "2026-10-12" in record.text
    assert "下次随访日期" in record.text and "2027-01-12" in record.text

    trends = await v.go(cover_link + "/trends")
    assert trends.status_code == 200 and "<svg" in trends.text and "收缩压" in trends.text
    log = await v.go(cover_link + "/access-log")
    assert "本人" in log.text and "档案首页" in log.text

    basic = await v.go(cover_link + "/basic")
    assert "个人基本信息" in basic.text and "刘**" in basic.text
    helped = await v.go("/r/help")
    assert "使用帮助" in helped.text
    for page in [home.text, *v.pages[first_archive_page:]]:
        found = [(w, page[max(0, page.find(w) - 60) : page.find(w) + 20]) for w in FORBIDDEN if w in page]
        assert not found
    v.assert_private()


async def test_a_note_tells_two_children_apart(with_records: Live, visitors: Visitors) -> None:
    v = await visitors("刘阿姨")
    home = await v.bind(ELDER)
    (cover_link,) = links(home.text, "/r/archives/")
    cover = await v.go(cover_link)
    action = cover_link + "/note"
    saved = await v.go(action, method="POST", data={**hidden_fields(cover.text, action), "note": "妈妈"})
    assert "备注已保存" in saved.text and "（妈妈）" in saved.text
    home = await v.go("/r/home")
    assert "（妈妈）" in home.text


async def test_a_hidden_archive_shows_the_one_text_on_every_page(
    with_records: Live, visitors: Visitors, tmp_path: Path
) -> None:
    _, services = with_records
    v = await visitors("孙小丽")
    home = await v.bind(TEEN)
    (cover_link,) = links(home.text, "/r/archives/")
    record_link = re.findall(r'href="(/r/records/[^"]+)"', (await v.go(cover_link + "/records")).text)[0]
    await services.counties.set("371522", phase="key_populations")  # she is in no key group
    texts = []
    for path in ("", "/basic", "/records", "/trends", "/access-log"):
        page = await v.go(cover_link + path)
        assert page.status_code == 403
        texts.append(re.sub(r"编号：[0-9a-f]+", "", page.text))
    page = await v.go(record_link)
    texts.append(re.sub(r"编号：[0-9a-f]+", "", page.text))
    assert len(set(texts)) == 1  # pages differ only by their request 编号
    assert "暂未开放自助查询" in texts[0] and "0635-7123456" in texts[0]
    home = await v.go("/r/home")
    assert "ui-card--closed" in home.text and "暂未开放自助查询" in home.text
    assert f'href="{cover_link}"' not in home.text  # no way in from the home page


async def test_pages_are_not_cached_and_need_a_login(with_records: Live, visitors: Visitors, people: Any) -> None:
    v = await visitors("刘阿姨")
    home = await v.bind(ELDER)
    (cover_link,) = links(home.text, "/r/archives/")
    r = await v.client.get(v.base + cover_link)
    assert r.headers["Cache-Control"] == "no-store"
    import httpx

    async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as stranger:
        r = await stranger.get(v.base + cover_link)
    assert r.status_code == 302 and r.headers["Location"].startswith("/oauth/start")
