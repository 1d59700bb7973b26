"""Residents' questions (留言) end to end, through the real app and the WeChat sandbox: a resident
asks from an archive page or by sending ``留言 …`` to the account, the question lands in the right
inbox (and nowhere else), staff read and answer it, and the answer reaches the resident's phone —
as a customer-service text inside WeChat's 48-hour window, else as a template message whose link
opens the answer for the asker only. Every ask, read and answer is audited without its text."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from binding.conftest import ELDER, OTHER_COUNTY
from conftest import Live, live_app
from e2e.test_bind_pages import Visitor, hidden_fields
from ingest_lines import COUNTY
from sqlalchemy import func, select

from wechat_backend.clock import FixedClock
from wechat_backend.db.models import AuditEvent, Feedback, Notification

from .conftest import INSTITUTION, OTHER_INSTITUTION, StaffWeb

QUESTION = "请问降压药是饭前吃还是饭后吃？"
ANSWER = "饭后半小时服用即可，具体请遵医嘱。"
TEMPLATE_ID = "T_feedback_answered"


@pytest.fixture
def feedback_templates() -> dict[str, Any]:
    """``[templates]`` of the app under test (a test parametrizes it to ``{}`` for none)."""
    return {
        "feedback_answered": {
            "template_id": TEMPLATE_ID,
            "fields": {"thing1": "kind", "time2": "date", "thing3": "institution"},
        }
    }


@pytest.fixture
async def live(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock, feedback_templates: dict[str, Any]
) -> AsyncIterator[Live]:
    """As tests/conftest.py's ``live``, with ``[templates.feedback_answered]`` configured."""
    async with live_app(tmp_path, db_url, redis_url, clock, templates=feedback_templates) as running:
        yield running


@pytest.fixture
async def browsers(people: Live) -> AsyncIterator[Any]:
    """``await browsers()``: a new in-app browser (not yet following)."""
    base, _ = people
    clients: list[httpx.AsyncClient] = []

    async def make() -> Visitor:
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20)
        clients.append(client)
        return Visitor(base, client)

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


# --------------------------------------------------------------------------- helpers


async def follower_with_archive(browsers: Any, nickname: str = "刘阿姨") -> tuple[Visitor, str]:
    """A follower logged in on the pages who bound 刘淑珍's archive; returns her and the cover path."""
    v: Visitor = await browsers()
    await v.follow_and_log_in(nickname)
    home = await v.bind(ELDER)
    (cover,) = re.findall(r'href="(/r/archives/[^"/?]+)"', home.text)
    return v, cover


async def ask_on_page(v: Visitor, form_path: str, text: str) -> httpx.Response:
    form = await v.go(form_path)
    assert form.status_code == 200, form.text
    return await v.submit(form, "/r/feedback/new", {"text": text})


async def ask_from_archive(v: Visitor, cover: str, text: str = QUESTION) -> str:
    """Open the archive, follow its 留言 link, ask; returns the question's public id."""
    page = await v.go(cover)
    (link,) = re.findall(r'href="(/r/feedback/new\?archive=[^"]+)"', page.text)
    done = await ask_on_page(v, html.unescape(link), text)
    assert done.status_code == 200 and "留言已提交" in done.text, done.text
    return done.url.path.rsplit("/", 1)[1]


async def text_account(v: Visitor, content: str) -> str:
    return (await v.control("POST", f"users/{v.openid}/text", {"content": content}))["reply"]


async def phone_messages(v: Visitor) -> list[dict[str, Any]]:
    return await v.control("GET", f"users/{v.openid}/messages")


async def answer(web: StaffWeb, public_id: str, text: str = ANSWER) -> httpx.Response:
    page = await web.get(f"/staff/inbox/{public_id}")
    assert page.status_code == 200, page.text
    action = f"/staff/inbox/{public_id}"
    return await web.post(action, data={**hidden_fields(page.text, action), "reply": text}, follow_redirects=True)


async def inbox_ids(web: StaffWeb, status: str = "all") -> list[str]:
    r = await web.get(f"/staff/inbox?status={status}")
    assert r.status_code == 200, r.text
    return re.findall(r'data-test="inbox-row" data-feedback="([^"]+)"', r.text)


async def questions(services: Any) -> list[Feedback]:
    async with services.sessions() as s:
        return list((await s.scalars(select(Feedback).order_by(Feedback.id))).all())


async def audit_rows(services: Any, action: str) -> list[AuditEvent]:
    async with services.sessions() as s:
        return list((await s.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


async def log_in_on(v: Visitor, link: str) -> httpx.Response:
    """Open a link; when the session has timed out, allow on WeChat's authorize page first."""
    page = await v.go(link)
    if "公众号申请获得以下权限" in page.text:
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text)[1])
        page = await v.go(action, method="POST", data={"openid": v.openid, "action": "allow"})
    return page


# --------------------------------------------------------------------------- routing and scope


async def test_a_question_from_an_archive_page_goes_to_that_archives_institution_only(
    people: Live, browsers: Any, staff_web: Any
) -> None:
    _, services = people
    v, cover = await follower_with_archive(browsers)
    (link,) = re.findall(r'href="(/r/feedback/new\?archive=[^"]+)"', (await v.go(cover)).text)
    page = await v.go(html.unescape(link))
    assert "莘县燕店镇卫生院" in page.text and "0635-7123456" in page.text  # who answers; whom to call now
    public_id = await ask_from_archive(v, cover)

    (row,) = await questions(services)
    assert (row.route, row.channel, row.institution_code, row.county_code) == ("archive", "page", INSTITUTION, COUNTY)
    assert row.archive_id is not None and row.status == "open" and QUESTION.encode() not in row.sealed

    mine = await staff_web("institution", institution=INSTITUTION)
    county = await staff_web("county", county=COUNTY)
    city = await staff_web("city")
    other = await staff_web("institution", institution=OTHER_INSTITUTION)
    other_county = await staff_web("county", county=OTHER_COUNTY)
    for web in (mine, county, city):
        assert await inbox_ids(web) == [public_id]
        opened = await web.get(f"/staff/inbox/{public_id}")
        assert opened.status_code == 200 and QUESTION in opened.text and "刘**" in opened.text
    for web in (other, other_county):
        assert await inbox_ids(web) == []
        assert (await web.get(f"/staff/inbox/{public_id}")).status_code == 404
        refused = await web.post(f"/staff/inbox/{public_id}", data={"reply": "不是我们的"})
        assert refused.status_code == 404
    assert (await questions(services))[0].status == "open"

    # The asker sees it under 我的留言; another resident's id is the same 404 as none.
    listing = await v.go("/r/feedback")
    assert public_id in listing.text and "等待回复" in listing.text
    stranger: Visitor = await browsers()
    await stranger.follow_and_log_in("路人")
    assert (await stranger.go(f"/r/feedback/{public_id}")).status_code == 404
    assert (await stranger.go("/r/feedback/nosuchquestion1")).status_code == 404
    assert public_id not in (await stranger.go("/r/feedback")).text


async def test_someone_elses_archive_id_cannot_be_asked_about(people: Live, browsers: Any) -> None:
    _, services = people
    _, cover = await follower_with_archive(browsers)
    archive_id = cover.rsplit("/", 1)[1]
    stranger: Visitor = await browsers()
    await stranger.follow_and_log_in("路人")
    assert (await stranger.go(f"/r/feedback/new?archive={archive_id}")).status_code == 404
    own_form = await stranger.go("/r/feedback/new")
    posted = await stranger.go(
        "/r/feedback/new",
        method="POST",
        data={**hidden_fields(own_form.text, "/r/feedback/new"), "archive": archive_id, "text": QUESTION},
    )
    assert posted.status_code == 404 and "未找到这份档案" in posted.text
    assert await questions(services) == []
    denied = await audit_rows(services, "feedback_ask")  # the form, then the post
    assert [(d.result, d.reason, d.archive_id) for d in denied] == [("denied", "not_bound", None)] * 2


async def test_a_message_from_a_qr_follower_goes_to_that_institution(
    people: Live, browsers: Any, staff_web: Any
) -> None:
    _, services = people
    v: Visitor = await browsers()
    v.openid = (await v.control("POST", "users", {"nickname": "扫码居民"}))["openid"]
    await v.control("POST", f"users/{v.openid}/scan", {"scene": OTHER_INSTITUTION})
    reply = await text_account(v, f"留言：{QUESTION}")
    assert "已收到您的留言" in reply and "阳谷县某卫生院" in reply and "/r/feedback" in reply
    (row,) = await questions(services)
    assert (row.route, row.channel, row.institution_code, row.county_code) == (
        "qr",
        "message",
        OTHER_INSTITUTION,
        OTHER_COUNTY,
    )
    assert await inbox_ids(await staff_web("institution", institution=OTHER_INSTITUTION)) == [row.public_id]
    assert await inbox_ids(await staff_web("institution", institution=INSTITUTION)) == []
    assert await inbox_ids(await staff_web("county", county=COUNTY)) == []


async def test_a_message_with_neither_archive_nor_qr_code_goes_to_the_city_inbox(
    people: Live, browsers: Any, staff_web: Any
) -> None:
    _, services = people
    v: Visitor = await browsers()
    v.openid = (await v.control("POST", "users", {"nickname": "居民"}))["openid"]
    await v.control("POST", f"users/{v.openid}/follow", {})
    reply = await text_account(v, f"  留言 {QUESTION}")
    assert "已收到您的留言" in reply and "健康档案服务工作人员" in reply
    (row,) = await questions(services)
    assert (row.route, row.institution_code, row.county_code) == ("city", None, None)
    city = await staff_web("city")
    assert await inbox_ids(city) == [row.public_id]
    assert "市级收件箱" in (await city.get("/staff/inbox")).text
    assert await inbox_ids(await staff_web("county", county=COUNTY)) == []
    assert await inbox_ids(await staff_web("institution", institution=INSTITUTION)) == []


async def test_a_bound_follower_asking_by_message_reaches_the_archives_institution(people: Live, browsers: Any) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    reply = await text_account(v, f"留言，{QUESTION}")
    assert "莘县燕店镇卫生院" in reply
    (row,) = await questions(services)
    assert (row.route, row.channel, row.institution_code) == ("archive", "message", INSTITUTION)


async def test_留言_alone_or_as_a_word_explains_how_to_ask_and_stores_nothing(people: Live, browsers: Any) -> None:
    _, services = people
    v: Visitor = await browsers()
    v.openid = (await v.control("POST", "users", {"nickname": "居民"}))["openid"]
    await v.control("POST", f"users/{v.openid}/follow", {})
    for content in ("留言", "留言：", "留言板在哪里"):
        reply = await text_account(v, content)
        assert "发送“留言”加上您的问题" in reply and "/r/feedback" in reply, reply
    help_text = await text_account(v, "帮助")
    assert "留言 — 向建档机构提问" in help_text
    assert "留言 您的问题" in await text_account(v, "你好")
    assert await questions(services) == []


# --------------------------------------------------------------------------- answering and delivery


async def test_an_answer_within_48_hours_of_the_residents_message_arrives_as_a_text(
    people: Live, browsers: Any, staff_web: Any, clock: FixedClock
) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    bystander: Visitor = await browsers()
    await bystander.follow_and_log_in("旁人")
    await text_account(v, f"留言 {QUESTION}")
    (row,) = await questions(services)
    clock.advance(hours=47)  # still inside the window the message opened
    web = await staff_web("institution", institution=INSTITUTION)
    page = await answer(web, row.public_id)
    assert page.status_code == 200 and "回复已保存" in page.text and "已通过客服消息" in page.text

    (latest, *_) = await phone_messages(v)
    assert latest["kind"] == "custom" and ANSWER in latest["text"] and f"/r/feedback/{row.public_id}" in latest["text"]
    assert not [m for m in await phone_messages(bystander) if m["kind"] == "custom"]
    (done,) = await questions(services)
    assert (done.status, done.delivery, done.replied_by) == ("answered", "custom", web.staff_id)
    assert done.replied_at == clock.now()

    shown = await log_in_on(v, f"/r/feedback/{row.public_id}")
    assert ANSWER in shown.text and QUESTION in shown.text
    assert "已回复" in (await v.go("/r/feedback")).text
    again = await web.post(f"/staff/inbox/{row.public_id}", data={"reply": "再答一次"})
    assert (
        again.status_code == 409 and "已经回复过了" in again.text and "再答一次" not in (await v.go("/r/feedback")).text
    )


async def test_a_page_question_after_the_window_closed_gets_a_template_message_with_the_link(
    people: Live, browsers: Any, staff_web: Any, clock: FixedClock
) -> None:
    """A question typed on a page does not open the 48-hour window: after the follow is 49 hours
    old, the text is refused (45015) and the template message goes instead, with the link only."""
    _, services = people
    v, cover = await follower_with_archive(browsers)
    clock.advance(hours=30)
    public_id = await log_in_and_ask(v, cover)
    clock.advance(hours=19)  # 49 hours since the follow, 19 since the page question
    web = await staff_web("institution", institution=INSTITUTION)
    page = await answer(web, public_id)
    assert "留言已回复" in page.text and 'data-delivery="template"' in page.text

    messages = await phone_messages(v)
    assert not [m for m in messages if m["kind"] == "custom"]
    (push,) = [m for m in messages if m["kind"] == "template"]
    assert push["template_id"] == TEMPLATE_ID and push["url"].endswith(f"/r/feedback/{public_id}")
    assert push["data"]["thing1"]["value"] == "留言已回复"
    assert push["data"]["thing3"]["value"] == "莘县燕店镇卫生院" and push["data"]["time2"]["value"]
    assert ANSWER not in str(push) and QUESTION not in str(push)
    (row,) = await questions(services)
    assert row.delivery == "template"
    async with services.sessions() as s:
        note = (await s.scalars(select(Notification).where(Notification.kind == "feedback_answered"))).one()
    assert (note.status, note.identity_id) == ("sent", row.identity_id)

    opened = await log_in_on(v, push["url"])
    assert opened.status_code == 200 and ANSWER in opened.text
    stranger: Visitor = await browsers()
    await stranger.follow_and_log_in("路人")
    assert (await stranger.go(push["url"])).status_code == 404


async def test_too_many_customer_service_messages_45047_falls_back_to_the_template(
    people: Live, browsers: Any, staff_web: Any
) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    await text_account(v, f"留言 {QUESTION}")
    (row,) = await questions(services)
    await v.control("POST", "faults", {"api": "cgi-bin/message/custom/send", "errcode": 45047, "count": 1})
    page = await answer(await staff_web("county", county=COUNTY), row.public_id)
    assert 'data-delivery="template"' in page.text
    (push,) = await phone_messages(v)
    assert push["kind"] == "template" and push["url"].endswith(f"/r/feedback/{row.public_id}")


async def test_an_answer_in_quiet_hours_waits_for_the_morning(
    people: Live, browsers: Any, staff_web: Any, clock: FixedClock
) -> None:
    """With the window closed at 22:00, the template push is queued, and the worker sends it
    when quiet hours end (08:00)."""
    _, services = people
    v, cover = await follower_with_archive(browsers)
    public_id = await ask_from_archive(v, cover)
    clock.advance(hours=60)  # 10:00 + 60 h = 22:00 two days later, Shanghai time
    page = await answer(await staff_web("institution", institution=INSTITUTION), public_id)
    assert 'data-delivery="template"' in page.text
    assert await phone_messages(v) == []
    assert (await services.outbox.run_once()).claimed == 0  # held back in quiet hours
    clock.advance(hours=10, minutes=1)
    assert (await services.outbox.run_once()).sent == 1
    (push,) = await phone_messages(v)
    assert push["kind"] == "template" and push["url"].endswith(f"/r/feedback/{public_id}")


async def log_in_and_ask(v: Visitor, cover: str) -> str:
    await log_in_on(v, cover)  # the session timed out meanwhile
    return await ask_from_archive(v, cover)


@pytest.mark.parametrize("feedback_templates", [{}])
async def test_with_no_template_and_the_window_closed_staff_are_told_where_the_resident_reads_it(
    people: Live, browsers: Any, staff_web: Any, clock: FixedClock
) -> None:
    _, services = people
    v, cover = await follower_with_archive(browsers)
    public_id = await ask_from_archive(v, cover)
    clock.advance(hours=49)
    page = await answer(await staff_web("city"), public_id)
    assert 'data-delivery="failed"' in page.text and "居民可在公众号“我的留言”中查看" in page.text
    assert await phone_messages(v) == []
    (row,) = await questions(services)
    assert (row.status, row.delivery) == ("answered", "failed")
    assert ANSWER in (await log_in_on(v, f"/r/feedback/{public_id}")).text


# --------------------------------------------------------------------------- the inbox


async def test_unanswered_questions_older_than_the_limit_are_highlighted(
    people: Live, browsers: Any, staff_web: Any, clock: FixedClock
) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    await text_account(v, "留言 第一个问题")
    clock.advance(hours=services.settings.staff.feedback_overdue_hours + 1)
    await text_account(v, "留言 第二个问题")
    old, new = await questions(services)
    web = await staff_web("institution", institution=INSTITUTION)
    listing = (await web.get("/staff/inbox")).text
    rows = dict(re.findall(r'data-feedback="([^"]+)"\s+data-status="open"( data-overdue="1")?', listing))
    assert rows == {old.public_id: ' data-overdue="1"', new.public_id: ""}
    assert re.findall(r'data-feedback="([^"]+)"', listing) == [new.public_id, old.public_id]  # newest first
    assert "有 1 条留言超过 48 小时未回复" in listing
    assert 'data-overdue="1"' in (await web.get(f"/staff/inbox/{old.public_id}")).text
    await answer(web, old.public_id)
    assert await inbox_ids(web, "open") == [new.public_id]
    assert await inbox_ids(web, "answered") == [old.public_id]
    assert "超过" not in (await web.get("/staff/inbox?status=answered")).text.split('data-test="inbox"')[1]


async def test_ask_read_and_answer_are_audited_without_the_text(people: Live, browsers: Any, staff_web: Any) -> None:
    _, services = people
    v, cover = await follower_with_archive(browsers)
    public_id = await ask_from_archive(v, cover)
    web = await staff_web("institution", institution=INSTITUTION)
    await answer(web, public_id)
    outsider = await staff_web("institution", institution=OTHER_INSTITUTION)
    assert (await outsider.get(f"/staff/inbox/{public_id}")).status_code == 404

    (asked,) = await audit_rows(services, "feedback_ask")
    assert asked.actor_type == "identity" and asked.result == "ok" and asked.archive_id is not None
    assert asked.detail == {"feedback": public_id, "route": "archive", "channel": "page"}
    reads = await audit_rows(services, "feedback_read")
    ok_reads = [r for r in reads if r.result == "ok"]
    assert len(ok_reads) == 2 and {r.actor_id for r in ok_reads} == {f"staff:{web.public_id}"}  # form, then result
    (denied,) = [r for r in reads if r.result == "denied"]
    assert denied.actor_id == f"staff:{outsider.public_id}" and denied.reason == "not_found"
    (answered,) = await audit_rows(services, "feedback_answer")
    assert answered.actor_id == f"staff:{web.public_id}" and answered.detail == {"feedback": public_id}
    for row in (asked, *reads, answered):
        blob = f"{row.detail} {row.reason} {row.reason_sealed!r}"
        assert "降压药" not in blob and "饭后" not in blob


# --------------------------------------------------------------------------- bad input and floods


async def test_html_in_a_question_and_an_answer_is_shown_as_text(people: Live, browsers: Any, staff_web: Any) -> None:
    v, cover = await follower_with_archive(browsers)
    question = "<script>alert(1)</script><b>粗体</b> ' OR 1=1; DROP TABLE feedback; --"
    public_id = await ask_from_archive(v, cover, question)
    web = await staff_web("institution", institution=INSTITUTION)
    staff_page = (await web.get(f"/staff/inbox/{public_id}")).text
    await answer(web, public_id, "<img src=x onerror=alert(2)>好的")
    for page in (staff_page, (await v.go(f"/r/feedback/{public_id}")).text):
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;粗体&lt;/b&gt;" in page
        assert "DROP TABLE feedback" in page
    mine = (await v.go(f"/r/feedback/{public_id}")).text
    assert "<img src=x" not in mine and "&lt;img src=x onerror=alert(2)&gt;好的" in mine


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "请填写问题"),
        ("   \n  ", "请填写问题"),
        ("问" * 501, "问题最多 500 字，现在是 501 字"),
        ("铃声\x7f响\u0085", "问题里有无法识别的字符"),  # (Tornado itself drops C0 controls but these)
    ],
)
async def test_an_empty_oversized_or_odd_question_is_refused_on_the_form_and_nothing_is_stored(
    people: Live, browsers: Any, text: str, says: str
) -> None:
    _, services = people
    v, cover = await follower_with_archive(browsers)
    archive_id = cover.rsplit("/", 1)[1]
    refused = await ask_on_page(v, f"/r/feedback/new?archive={archive_id}", text)
    assert refused.status_code == 400 and says in refused.text and 'data-test="form-error"' in refused.text
    assert await questions(services) == []
    assert await audit_rows(services, "feedback_ask") == []


async def test_an_oversized_message_is_refused_with_the_reason(people: Live, browsers: Any) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    reply = await text_account(v, "留言 " + "问" * 501)
    assert "留言没有提交" in reply and "最多 500 字" in reply and "0635-7123456" in reply
    assert await questions(services) == []


async def test_an_empty_or_oversized_answer_is_refused_and_the_question_stays_open(
    people: Live, browsers: Any, staff_web: Any
) -> None:
    _, services = people
    v, cover = await follower_with_archive(browsers)
    public_id = await ask_from_archive(v, cover)
    web = await staff_web("institution", institution=INSTITUTION)
    empty = await answer(web, public_id, "  ")
    assert empty.status_code == 400 and "请填写回复" in empty.text
    long = await answer(web, public_id, "答" * 1001)
    assert long.status_code == 400 and "回复最多 1000 字" in long.text and "答" * 1001 in long.text  # kept as typed
    (row,) = await questions(services)
    assert (row.status, row.delivery, row.replied_at) == ("open", None, None)
    assert await phone_messages(v) == []
    assert await audit_rows(services, "feedback_answer") == []


async def test_a_resident_cannot_flood_the_inbox(people: Live, browsers: Any, clock: FixedClock) -> None:
    _, services = people
    v, _ = await follower_with_archive(browsers)
    for n in range(3):
        assert "已收到您的留言" in await text_account(v, f"留言 问题{n}")
    too_fast = await text_account(v, "留言 问题3")
    assert "留言没有提交" in too_fast and "留言太快了" in too_fast
    for n in range(3, 10):
        clock.advance(seconds=61)
        assert "已收到您的留言" in await text_account(v, f"留言 问题{n}")
    clock.advance(seconds=61)
    full = await text_account(v, "留言 第十一个")
    assert "今天留言已达 10 条" in full
    form = await v.go("/r/feedback/new")
    page = await v.submit(form, "/r/feedback/new", {"text": "页面上再问一个"})
    assert page.status_code == 429 and "今天留言已达 10 条" in page.text
    async with services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Feedback)) == 10
    clock.advance(hours=24)
    assert "已收到您的留言" in await text_account(v, "留言 第二天的问题")
