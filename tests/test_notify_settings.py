"""提醒设置 and the 随访提醒 menu item, against the real app with the sandbox: a resident chooses per
archive which pushes come (JSON with a Bearer token or on the ``/r/settings`` page), the choice
holds for every identity of the person and the due scan obeys it; the menu item answers with the
person's own next dates, never one of an archive they may not see; an unfollow stops what waits."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from binding.conftest import CHILD, ELDER, MOTHER_PHONE, TEEN, Resident, people, resident
from conftest import Live, live_app
from sqlalchemy import select, update

from wechat_backend.clock import FixedClock
from wechat_backend.db.models import Archive, DueItem, Identity, Notification, NotifyMute
from wechat_backend.notify.kinds import CHOOSABLE, LABELS

__all__ = ["people", "resident"]  # the data set and residents of tests/binding, used here as fixtures

SETTINGS = "/api/v1/notify/settings"
TODAY = dt.date(2026, 11, 25)  # the fixed clock's day in Shanghai
FIELDS = {"thing1": "kind", "time2": "date", "thing3": "institution", "thing4": "name"}
# Only these two kinds have a template: the others cannot be sent and say so.
OPEN = ("record_added", "followup_due")
NOT_OPEN = tuple(k for k in CHOOSABLE if k not in OPEN)


@pytest.fixture
async def live(tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock) -> AsyncIterator[Live]:
    """As tests/conftest.py's ``live``, with templates for :data:`OPEN` only."""
    templates = {k: {"template_id": f"T_{k}", "fields": FIELDS} for k in OPEN}
    async with live_app(tmp_path, db_url, redis_url, clock, templates=templates) as running:
        yield running


async def elder_and_child(resident: Any, clock: FixedClock) -> tuple[Resident, dict[str, Any], dict[str, Any]]:
    """A mother on both channels (one person: the same unionid) who bound herself and her son."""
    mum = await resident("李红", unionid=True)
    await mum.follow_and_web_login()
    elder = await mum.bind(ELDER)
    clock.advance(seconds=61)
    child = await mum.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    return mum, elder, child


async def settings_of(who: Resident) -> dict[str, Any]:
    r = await who.call("GET", SETTINGS)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    return r.json()


def kinds(state: dict[str, Any], archive_id: str) -> dict[str, bool]:
    return next(a["kinds"] for a in state["archives"] if a["id"] == archive_id)


async def archive_pk(services: Any, public_id: str) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(Archive.id).where(Archive.public_id == public_id))


async def add_due(services: Any, public_id: str, kind: str, due_on: dt.date) -> None:
    async with services.sessions.begin() as s:
        s.add(DueItem(archive_id=await archive_pk(services, public_id), kind=kind, due_on=due_on, basis_on=TODAY))


async def mutes(services: Any) -> set[tuple[str, int, str]]:
    async with services.sessions() as s:
        rows = await s.execute(
            select(Identity.channel, NotifyMute.archive_id, NotifyMute.kind).join(
                Identity, Identity.id == NotifyMute.identity_id
            )
        )
        return {tuple(r) for r in rows.all()}


# --------------------------------------------------------------------------- the JSON API


async def test_settings_list_every_bound_archive_as_the_home_page_does_with_every_kind_on(
    resident: Any, clock: FixedClock
) -> None:
    mum, elder, child = await elder_and_child(resident, clock)
    state = await settings_of(mum)
    listed = [a["id"] for a in await mum.archives()]
    assert [a["id"] for a in state["archives"]] == listed == [elder["id"], child["id"]]
    assert [(a["name"], a["relation"]) for a in state["archives"]] == [("刘**", "self"), ("王**", "child")]
    for a in state["archives"]:
        assert a["kinds"] == dict.fromkeys(CHOOSABLE, True)
    assert state["available"] == {k: k in OPEN for k in CHOOSABLE}
    # The official-account session (cookie) of the same person sees the same.
    r = await mum.client.get(mum.base + SETTINGS)
    assert r.status_code == 200 and r.json() == state


async def test_muting_a_kind_holds_for_every_identity_of_the_person_and_the_scan_obeys(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    _, services = people
    mum, elder, child = await elder_and_child(resident, clock)
    body = {"archives": [{"id": elder["id"], "kinds": {"followup_due": False}}]}
    r = await mum.call("PUT", SETTINGS, body)
    assert r.status_code == 200, r.text
    assert kinds(r.json(), elder["id"]) == {**dict.fromkeys(CHOOSABLE, True), "followup_due": False}
    assert kinds(r.json(), child["id"]) == dict.fromkeys(CHOOSABLE, True)
    assert (await settings_of(mum)) == r.json()
    pk = await archive_pk(services, elder["id"])
    assert await mutes(services) == {("mp", pk, "followup_due"), ("oa", pk, "followup_due")}

    again = await mum.call("PUT", SETTINGS, body)  # the same choice again changes nothing
    assert again.status_code == 200 and again.json() == r.json()
    assert len(await mutes(services)) == 2

    # Muted: the day's scan queues no reminder for it; the child's still goes.
    await add_due(services, elder["id"], "followup_due", TODAY + dt.timedelta(days=2))
    await add_due(services, child["id"], "followup_due", TODAY + dt.timedelta(days=2))
    await services.due_scan.scan()
    async with services.sessions() as s:
        queued = (await s.execute(select(Notification.kind, Notification.archive_id))).all()
    assert [tuple(q) for q in queued] == [("followup_due", await archive_pk(services, child["id"]))]

    on = await mum.call("PUT", SETTINGS, {"archives": [{"id": elder["id"], "kinds": {"followup_due": True}}]})
    assert on.status_code == 200 and kinds(on.json(), elder["id"])["followup_due"] is True
    assert await mutes(services) == set()


async def test_someone_elses_archive_is_not_found_like_one_that_does_not_exist(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    _, services = people
    mum, elder, _ = await elder_and_child(resident, clock)
    clock.advance(seconds=61)
    other = await resident("孙小丽")
    theirs = await other.bind(TEEN)
    answers = []
    for archive_id in (theirs["id"], "nosuchid0000"):
        r = await mum.call("PUT", SETTINGS, {"archives": [{"id": archive_id, "kinds": {"record_added": False}}]})
        assert r.status_code == 404
        answers.append(r.json())
    assert answers[0] == answers[1] and answers[0]["error"] == "not_found"
    # Nothing was written, not even for the caller's own archive named in the same request.
    mixed = {"archives": [{"id": elder["id"], "kinds": {"record_added": False}}, {"id": theirs["id"], "kinds": {}}]}
    assert (await mum.call("PUT", SETTINGS, mixed)).status_code == 404
    assert await mutes(services) == set()
    assert kinds(await settings_of(other), theirs["id"]) == dict.fromkeys(CHOOSABLE, True)


@pytest.mark.parametrize(
    "body",
    [
        {"archives": [{"id": "ARCHIVE", "kinds": {"binding_added": False}}]},  # the security alert
        {"archives": [{"id": "ARCHIVE", "kinds": {"weather": False}}]},
        {"archives": [{"id": "ARCHIVE", "kinds": {"record_added": "false"}}]},
        {"archives": [{"id": "ARCHIVE", "kinds": {"record_added": 0}}]},
        {"archives": [{"id": "ARCHIVE", "kinds": ["record_added"]}]},
        {"archives": [{"id": 12, "kinds": {}}]},
        {"archives": {"ARCHIVE": {"record_added": False}}},
        {"archives": ["ARCHIVE"]},
        {},
        "not json",
        ["not", "an", "object"],
    ],
)
async def test_anything_but_known_kinds_set_to_true_or_false_is_bad_input(
    resident: Any, people: Live, body: Any
) -> None:
    _, services = people
    me = await resident("刘阿姨")
    elder = await me.bind(ELDER)
    if body == "not json":
        r = await me.client.put(
            me.base + SETTINGS, content=b"{not json", headers={"Authorization": f"Bearer {me.token}"}
        )
    else:
        r = await me.call("PUT", SETTINGS, _with_id(body, elder["id"]))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_input" and re.search(r"[\u4e00-\u9fff]", r.json()["message"])
    assert await mutes(services) == set()


def _with_id(body: Any, archive_id: str) -> Any:
    if isinstance(body, dict):
        return {k: _with_id(v, archive_id) for k, v in body.items()}
    if isinstance(body, list):
        return [_with_id(v, archive_id) for v in body]
    return archive_id if body == "ARCHIVE" else body


async def test_the_security_alert_cannot_be_turned_off_and_says_why(resident: Any) -> None:
    me = await resident("刘阿姨")
    elder = await me.bind(ELDER)
    r = await me.call("PUT", SETTINGS, {"archives": [{"id": elder["id"], "kinds": {"binding_added": False}}]})
    assert r.status_code == 400 and "安全提醒" in r.json()["message"] and r.json()["field"] == "kinds"


async def test_without_login_the_settings_answer_401(people: Live) -> None:
    base, _ = people
    async with httpx.AsyncClient(trust_env=False) as anyone:
        assert (await anyone.get(base + SETTINGS)).status_code == 401
        assert (await anyone.put(base + SETTINGS, json={"archives": []})).status_code == 401


# --------------------------------------------------------------------------- the page


def form_of(page: str) -> tuple[str, list[str]]:
    """The settings form's XSRF token and its archive ids (hidden inputs)."""
    found = re.search(r'<form[^>]*action="/r/settings"[^>]*>(.*?)</form>', page, re.S)
    assert found, "no settings form"
    xsrf = re.search(r'name="_xsrf" value="([^"]*)"', found[1])
    assert xsrf
    return html.unescape(xsrf[1]), re.findall(r'<input type="hidden" name="archive" value="([^"]+)"', found[1])


async def test_the_page_shows_each_archive_and_saving_it_changes_the_settings(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    base, _ = people
    mum, elder, child = await elder_and_child(resident, clock)
    home = await mum.client.get(base + "/r/home")
    assert 'href="/r/settings"' in home.text and "提醒设置" in home.text

    page = await mum.client.get(base + "/r/settings")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "刘**" in page.text and "王**" in page.text and "本人" in page.text and "子女" in page.text
    for kind in CHOOSABLE:
        assert page.text.count(LABELS[kind]) == 2
    assert page.text.count("暂未开通") == 2 * len(NOT_OPEN)  # shown, never pretending to work
    assert "style=" not in page.text and "<script>" not in page.text
    assert "已保存" not in page.text
    xsrf, archives = form_of(page.text)
    assert archives == [elder["id"], child["id"]]

    # Untick the elder's follow-up reminder; everything else stays ticked.
    ticked = [f"{a}:{k}" for a in archives for k in OPEN if (a, k) != (elder["id"], "followup_due")]
    posted = await mum.client.post(base + "/r/settings", data={"_xsrf": xsrf, "archive": archives, "on": ticked})
    assert posted.status_code == 302 and posted.headers["Location"] == "/r/settings?saved=1"  # Post/Redirect/Get
    saved = await mum.client.get(base + posted.headers["Location"])
    assert saved.status_code == 200 and "已保存" in saved.text
    assert re.search(rf'value="{elder["id"]}:followup_due"[^>]*>', saved.text)[0].count("checked") == 0
    assert "checked" in re.search(rf'value="{child["id"]}:followup_due"[^>]*>', saved.text)[0]

    state = await settings_of(mum)  # the mini-program's token: the same person, the same choice
    assert kinds(state, elder["id"]) == {**dict.fromkeys(CHOOSABLE, True), "followup_due": False}
    assert kinds(state, child["id"]) == dict.fromkeys(CHOOSABLE, True)  # kinds not open are left alone
    again = await mum.client.get(base + "/r/settings")
    assert "已保存" not in again.text  # the notice is shown once


async def test_the_page_without_xsrf_is_refused_and_without_login_goes_to_wechat_login(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    base, services = people
    mum, elder, _ = await elder_and_child(resident, clock)
    r = await mum.client.post(base + "/r/settings", data={"archive": [elder["id"]], "on": []})
    assert r.status_code == 403
    assert await mutes(services) == set()
    async with httpx.AsyncClient(trust_env=False) as anyone:
        r = await anyone.get(base + "/r/settings")
    assert r.status_code == 302 and r.headers["Location"] == "/oauth/start?next=%2Fr%2Fsettings"


# --------------------------------------------------------------------------- 随访提醒


async def test_the_followup_menu_item_answers_with_the_persons_next_dates_only_of_archives_they_see(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    base, services = people
    mum, elder, child = await elder_and_child(resident, clock)
    await add_due(services, elder["id"], "followup_due", dt.date(2026, 12, 8))
    await add_due(services, elder["id"], "exam_due", dt.date(2026, 11, 20))  # already past
    await add_due(services, child["id"], "child_check_due", dt.date(2026, 12, 20))

    reply = (await mum.sandbox("POST", f"users/{mum.openid}/click", {"key": "FOLLOWUP"}))["reply"]
    lines = reply.splitlines()
    assert lines[1] == "本人 · 随访 · 2026年12月8日"
    assert lines[2] == "您的家人王** · 儿童健康检查 · 2026年12月20日"
    assert "健康体检" not in reply and "2026年11月20日" not in reply
    assert "随访到期前3天，公众号会发消息提醒您" in reply  # only follow-ups have a template here
    assert reply.rstrip().endswith(base + "/r/settings")
    assert not re.search(r"高血压|糖尿病|mmHg|血压|血糖", reply)
    # Typed instead of clicked: the same answer.
    assert (await mum.sandbox("POST", f"users/{mum.openid}/text", {"content": "随访"}))["reply"] == reply

    # The child's archive is no longer open to residents: its date is not shown, nor is he named.
    async with services.sessions.begin() as s:
        await s.execute(update(Archive).where(Archive.public_id == child["id"]).values(open_to_resident=False))
    hidden = (await mum.sandbox("POST", f"users/{mum.openid}/click", {"key": "FOLLOWUP"}))["reply"]
    assert "本人 · 随访 · 2026年12月8日" in hidden
    assert "王**" not in hidden and "儿童健康检查" not in hidden and "2026年12月20日" not in hidden


async def test_the_followup_menu_item_tells_someone_with_nothing_bound_how_to_bind(resident: Any, people: Live) -> None:
    base, _ = people
    me = await resident("新居民")
    reply = (await me.sandbox("POST", f"users/{me.openid}/follow", {}))["reply"]
    assert "欢迎关注" in reply
    answer = (await me.sandbox("POST", f"users/{me.openid}/click", {"key": "FOLLOWUP"}))["reply"]
    assert "还没有绑定健康档案" in answer and "回复“绑定”" in answer and base + "/r/home" in answer


async def test_an_unfollow_skips_every_push_still_waiting_for_that_follower(
    resident: Any, people: Live, clock: FixedClock
) -> None:
    _, services = people
    mum, elder, child = await elder_and_child(resident, clock)
    for archive in (elder, child):
        await add_due(services, archive["id"], "followup_due", TODAY + dt.timedelta(days=2))
    assert (await services.due_scan.scan()).queued == 2

    await mum.sandbox("POST", f"users/{mum.openid}/unfollow", {})
    async with services.sessions() as s:
        statuses = (await s.scalars(select(Notification.status))).all()
    assert statuses == ["skipped", "skipped"]
    assert (await services.outbox.run_once()).claimed == 0
    messages = await mum.sandbox("GET", f"users/{mum.openid}/messages")
    assert [m for m in messages if m["kind"] == "template"] == []
