"""A bound resident hears of a new record once, is reminded before a follow-up once, at a decent
hour, and never about what they muted or may not see."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from ingest_lines import record, write
from sqlalchemy import select

from wechat_backend.db.models import DueItem, Notification
from wechat_backend.ingest.signed import sign, signing_key

from .conftest import ELDER, Resident, drain, template_calls, templates_to

TODAY = dt.date(2026, 11, 25)  # the fixed clock's day in Shanghai (10:00)


async def bound_elder(resident: Any) -> Resident:
    """刘淑珍 herself: following the account, logged in on its pages, her archive bound."""
    who = await resident("刘阿姨", unionid=True)
    await who.follow_and_web_login()
    await who.bind(ELDER)
    return who


def followup(n: int, day: dt.date, **over: Any) -> dict[str, Any]:
    fields = {"date": day.isoformat(), "next_due_date": (day + dt.timedelta(days=90)).isoformat(), **over}
    return record(n, ELDER, **fields)


async def import_lines(services: Any, tmp_path: Path, lines: list[dict[str, Any]], name: str = "new") -> None:
    report = await services.ingest.import_file(write(tmp_path / f"{name}.jsonl", lines))
    assert report.rejected == 0, report.errors


async def open_through_oauth(base: str, who: Resident, url: str) -> httpx.Response:
    """Open a push's link on a phone with no session yet: the page sends it through WeChat's OAuth
    (the sandbox plays the consent) and back to the page."""
    async with httpx.AsyncClient(trust_env=False, timeout=20) as phone:
        r = await phone.get(url)
        assert r.status_code == 302 and "/oauth/start" in r.headers["Location"], r.text
        r = await phone.get(
            base + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"]
        )
        assert r.status_code == 302, r.text
        state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
        code = (await who.sandbox("POST", f"users/{who.openid}/oauth-code", {}))["code"]
        r = await phone.get(base + "/oauth/callback", params={"code": code, "state": state})
        assert r.status_code == 302, r.text
        target = r.headers["Location"]
        assert urlsplit(url).path == urlsplit(target).path
        return await phone.get(base + target if target.startswith("/") else target)


async def test_a_new_follow_up_is_announced_once_and_its_link_opens_it(
    resident: Any, people: Any, clock: Any, tmp_path: Path
) -> None:
    base, services = people
    elder = await bound_elder(resident)
    await import_lines(services, tmp_path, [followup(101, TODAY - dt.timedelta(days=2))])
    assert await drain(services) == 1
    pushed = await templates_to(elder)
    assert len(pushed) == 1
    push = pushed[0]
    assert push["template_id"] == "T_record_added"
    values = {k: v["value"] for k, v in push["data"].items()}
    assert values == {
        "thing1": "新的健康服务记录",
        "time2": "2026年11月23日",
        "thing3": "莘县燕店镇卫生院",
        "thing4": "本人",
    }
    assert all(len(v) <= 20 for v in values.values())
    # Nothing medical: no diagnosis code, value, or programme.
    assert not any(word in str(push) for word in ("I10", "142", "高血压", "血压"))

    page = await open_through_oauth(base, elder, push["url"])
    assert page.status_code == 200, page.text
    assert "2026年11月23日" in page.text or "2026-11-23" in page.text

    # The same file again, and a corrected version of the record: nothing more.
    calls = await template_calls(elder)
    await import_lines(services, tmp_path, [followup(101, TODAY - dt.timedelta(days=2))], "again")
    await import_lines(services, tmp_path, [followup(101, TODAY - dt.timedelta(days=2), version=2)], "fix")
    assert await drain(services) == 0
    assert await template_calls(elder) == calls
    assert len(await templates_to(elder)) == 1


async def test_a_follow_up_sent_by_the_signed_api_is_announced_once(resident: Any, people: Any, clock: Any) -> None:
    base, services = people
    elder = await bound_elder(resident)
    key = signing_key(services.settings.security.ingest_hmac_key)
    assert key is not None
    body = (json.dumps(followup(151, TODAY), ensure_ascii=False) + "\n").encode()

    async def post() -> httpx.Response:
        stamp = str(int(clock.now().timestamp()))
        headers = {"X-WB-Timestamp": stamp, "X-WB-Signature": sign(key, stamp, body)}
        return await elder.client.post(base + "/api/v1/ingest", content=body, headers=headers)

    r = await post()
    assert r.status_code == 200, r.text
    assert [line["status"] for line in r.json()["lines"]] == ["inserted"]
    assert await drain(services) == 1
    clock.advance(seconds=1)  # the upstream sends it again, newly signed
    assert [line["status"] for line in (await post()).json()["lines"]] == ["unchanged"]
    assert await drain(services) == 0
    pushed = await templates_to(elder)
    assert [m["template_id"] for m in pushed] == ["T_record_added"]
    assert (await open_through_oauth(base, elder, pushed[0]["url"])).status_code == 200


async def test_history_and_hidden_records_push_nothing(resident: Any, people: Any, tmp_path: Path) -> None:
    _, services = people
    elder = await bound_elder(resident)
    old = followup(201, TODAY - dt.timedelta(days=31))  # older than [notify] record_max_age_days
    tb = record(202, ELDER, kind="tuberculosis_followup", date=(TODAY - dt.timedelta(days=1)).isoformat())
    await import_lines(services, tmp_path, [old, tb])
    assert await drain(services) == 0
    assert await template_calls(elder) == 0


async def test_a_follow_up_due_is_reminded_once_within_the_lead_days(
    resident: Any, people: Any, clock: Any, tmp_path: Path
) -> None:
    _, services = people
    elder = await bound_elder(resident)
    due = TODAY + dt.timedelta(days=10)
    await import_lines(
        services, tmp_path, [followup(301, TODAY - dt.timedelta(days=80), next_due_date=due.isoformat())]
    )
    scan = services.due_scan
    assert (await scan.scan(due - dt.timedelta(days=4))).queued == 0  # not yet within 3 days
    assert (await scan.scan(due - dt.timedelta(days=3))).queued == 1
    assert (await scan.scan(due - dt.timedelta(days=3))).queued == 0  # a second scan: nothing new
    assert (await scan.scan(due - dt.timedelta(days=1))).queued == 0  # nor a later day's
    assert await drain(services) == 1
    push = (await templates_to(elder))[0]
    assert push["template_id"] == "T_followup_due"
    assert push["data"]["time2"]["value"] == f"{due.year}年{due.month}月{due.day}日"
    assert "/r/archives/" in push["url"]


async def test_a_later_record_moves_the_due_date(resident: Any, people: Any, tmp_path: Path) -> None:
    _, services = people
    await bound_elder(resident)
    first = TODAY + dt.timedelta(days=5)
    later = TODAY + dt.timedelta(days=60)
    await import_lines(
        services,
        tmp_path,
        [
            followup(401, TODAY - dt.timedelta(days=85), next_due_date=first.isoformat()),
            followup(402, TODAY - dt.timedelta(days=1), next_due_date=later.isoformat()),
        ],
    )
    async with services.sessions() as s:
        items = (await s.execute(select(DueItem.kind, DueItem.due_on))).all()
    assert ("followup_due", later) in items and ("followup_due", first) not in items
    assert (await services.due_scan.scan(first - dt.timedelta(days=2))).queued == 0


async def test_a_muted_kind_is_not_pushed(resident: Any, people: Any, tmp_path: Path) -> None:
    _, services = people
    elder = await bound_elder(resident)
    archive_id = (await elder.archives())[0]["id"]
    r = await elder.call(
        "PUT", "/api/v1/notify/settings", {"archives": [{"id": archive_id, "kinds": {"record_added": False}}]}
    )
    assert r.status_code == 200, r.text
    await import_lines(services, tmp_path, [followup(501, TODAY)])
    assert await drain(services) == 0
    assert await template_calls(elder) == 0


async def test_quiet_hours_hold_notices_but_not_the_security_alert(
    resident: Any, people: Any, clock: Any, tmp_path: Path
) -> None:
    _, services = people
    elder = await bound_elder(resident)
    clock.advance(hours=12)  # 22:00 in Shanghai
    await import_lines(services, tmp_path, [followup(601, TODAY)])
    clock.advance(seconds=61)
    daughter = await resident("女儿")
    await daughter.bind(ELDER, relation="child")  # the owner is told at once, quiet hours or not
    await drain(services)
    assert [m["template_id"] for m in await templates_to(elder)] == ["T_binding_added"]
    clock.advance(hours=9, minutes=58)  # 07:59 next morning: still quiet
    assert await drain(services) == 0
    clock.advance(hours=1, minutes=2)  # the end of the quiet hours plus the hour they are spread over
    assert await drain(services) == 1
    assert [m["template_id"] for m in await templates_to(elder)] == ["T_binding_added", "T_record_added"]


async def test_an_archive_hidden_after_queueing_is_skipped(resident: Any, people: Any, tmp_path: Path) -> None:
    _, services = people
    elder = await bound_elder(resident)
    await import_lines(services, tmp_path, [followup(701, TODAY)])
    await services.counties.set("371522", opening=False)
    assert await drain(services) == 0
    async with services.sessions() as s:
        assert (await s.execute(select(Notification.kind, Notification.status))).all() == [("record_added", "skipped")]
    assert await template_calls(elder) == 0


async def test_scans_at_once_queue_each_reminder_once(resident: Any, people: Any, clock: Any, tmp_path: Path) -> None:
    """Several workers may scan the same day at the same moment: the reminders are queued once, and
    the worker's daily turn is taken by one of them."""
    _, services = people
    elder = await bound_elder(resident)
    due = TODAY + dt.timedelta(days=2)
    await import_lines(
        services, tmp_path, [followup(801, TODAY - dt.timedelta(days=88), next_due_date=due.isoformat())]
    )
    reports = await asyncio.gather(*(services.due_scan.scan(TODAY) for _ in range(4)))
    assert sum(r.queued for r in reports) == 1
    clock.advance(hours=-3)  # 07:00: before [notify] scan_at
    assert await services.due_scan.run_due_today() is None
    clock.advance(minutes=31)
    daily = await asyncio.gather(*(services.due_scan.run_due_today() for _ in range(3)))
    assert [r is not None for r in daily].count(True) == 1  # one worker took the day
    assert await services.due_scan.run_due_today() is None  # and nobody runs it again
    clock.advance(hours=2, minutes=29)  # back at 10:00, when the reminder was queued
    assert await drain(services) == 1
    assert [m["template_id"] for m in await templates_to(elder)] == ["T_followup_due"]


async def test_an_unbinding_or_a_mute_stops_what_is_already_queued(
    resident: Any, people: Any, clock: Any, tmp_path: Path
) -> None:
    _, services = people
    elder = await bound_elder(resident)
    clock.advance(seconds=61)
    daughter = await resident("女儿", unionid=True)
    await daughter.follow_and_web_login()
    bound = await daughter.bind(ELDER, relation="child")
    await drain(services)  # the owner's security alert
    await import_lines(services, tmp_path, [followup(901, TODAY)])  # a notice queued for each of them
    async with services.sessions() as s:
        assert len((await s.execute(select(Notification.id).where(Notification.kind == "record_added"))).all()) == 2

    assert (await daughter.call("DELETE", f"/api/v1/bindings/{bound['binding_id']}")).status_code == 204
    archive_id = (await elder.archives())[0]["id"]
    mute = {"archives": [{"id": archive_id, "kinds": {"record_added": False}}]}
    assert (await elder.call("PUT", "/api/v1/notify/settings", mute)).status_code == 200
    assert await drain(services) == 0
    assert [m["template_id"] for m in await templates_to(elder)] == ["T_binding_added"]
    assert await templates_to(daughter) == []
