"""What the binding flow refuses, each with its exact answer, and with nothing bound or sent."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from conftest import make_settings
from ingest_lines import archive
from local_server import serving
from sqlalchemy import func, select

from wechat_backend import audit
from wechat_backend.app import make_app
from wechat_backend.binding import BindingService, Caller, RateLimits, parse_bind_request
from wechat_backend.db.models import AuditEvent, BindAttempt, Binding, Identity
from wechat_backend.errors import Mismatch, Unavailable
from wechat_backend.services import build_services
from wechat_backend.validators import id_check_char

from .conftest import CLOSED_COUNTY, ELDER, NOT_OPENED, PARENT_OF_CHILD_PHONE, SENSITIVE, TEEN, person


async def bindings(services: Any) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Binding)) or 0


async def audit_reasons(services: Any, action: str) -> list[str | None]:
    """The reasons of the rows of ``action``, opened where they are sealed (audit.reason_of)."""
    async with services.sessions() as s:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return [audit.reason_of(row, services.keyring) for row in (await s.scalars(q)).all()]


async def three_mismatches(mallory: Any) -> list[httpx.Response]:
    """A wrong name, a wrong phone and an ID number no archive has, for 刘淑珍's archive."""
    unknown_id = "371522195503109991"[:17]
    return [
        await mallory.start(ELDER, name="刘淑芬"),
        await mallory.start(ELDER, phone="13906350999"),
        await mallory.start(ELDER, id_number=unknown_id + id_check_char(unknown_id)),
    ]


async def test_wrong_name_wrong_phone_and_unknown_id_get_one_and_the_same_answer(resident: Any, people: Any) -> None:
    _, services = people
    mallory = await resident("试探者")
    elder = person(ELDER)
    answers = await three_mismatches(mallory)
    assert {r.status_code for r in answers} == {400}
    assert len({r.content for r in answers}) == 1  # byte for byte
    assert answers[0].json() == {
        "error": "mismatch",
        "message": "信息不一致，请核对姓名、身份证号和手机号后重试。如手机号已更换，请携带身份证到建档机构更新。",
    }
    assert await mallory.inbox(elder["phone"]) == [] and await bindings(services) == 0
    # Staff can tell the cases apart; the audit keeps the precise reason.
    assert await audit_reasons(services, "bind_start") == ["name_mismatch", "phone_mismatch", "unknown_identifier"]


async def test_with_a_city_consultation_phone_every_mismatch_names_it_and_stays_one_answer(
    resident: Any, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, services = people
    city = replace(services.settings, service=replace(services.settings.service, consult_phone="0635-12320"))
    monkeypatch.setattr(services.binding, "_settings", city)  # as if [service] consult_phone were set
    mallory = await resident("试探者")
    answers = await three_mismatches(mallory)
    assert {r.status_code for r in answers} == {400}
    assert len({r.content for r in answers}) == 1  # byte for byte
    assert answers[0].json() == {
        "error": "mismatch",
        "message": "信息不一致，请核对姓名、身份证号和手机号后重试。如手机号已更换，请携带身份证到建档机构更新。"
        "咨询电话：0635-12320",
        "consult_phone": "0635-12320",
    }


def test_the_mismatch_words_are_put_together_in_one_place() -> None:
    assert Mismatch().to_json() == {
        "error": "mismatch",
        "message": "信息不一致，请核对姓名、身份证号和手机号后重试。如手机号已更换，请携带身份证到建档机构更新。",
    }
    with_phone = Mismatch("12345")
    assert with_phone.message.endswith("如手机号已更换，请携带身份证到建档机构更新。咨询电话：12345")
    assert with_phone.extra == {"consult_phone": "12345"} and with_phone.status == 400


async def test_names_compare_after_normalising_width_spaces_and_the_middle_dot(resident: Any) -> None:
    me = await resident()
    r = await me.start(ELDER, name=" 刘 淑珍 ")
    assert r.status_code == 201, r.text


async def test_hidden_archives_answer_not_open_with_the_consultation_phone_and_send_nothing(
    resident: Any, people: Any
) -> None:
    _, services = people
    someone = await resident()
    answers = [await someone.start(n) for n in (SENSITIVE, NOT_OPENED, CLOSED_COUNTY)]
    assert [r.status_code for r in answers] == [403, 403, 403]
    bodies = [r.json() for r in answers]
    assert {b["error"] for b in bodies} == {"not_open"}
    assert all(b["message"].startswith("暂未开放自助查询") for b in bodies)
    assert bodies[0]["consult_phone"] == "0635-7123456" and bodies[0] == bodies[1]  # same words, whatever the reason
    for n in (SENSITIVE, NOT_OPENED, CLOSED_COUNTY):
        assert await someone.inbox(person(n)["phone"]) == []
    assert await audit_reasons(services, "bind_start") == ["sensitive_programme", "not_opened", "county_closed"]


async def test_the_sixth_try_fails_even_with_the_right_code(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    code = await me.last_code(person(ELDER)["phone"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [await me.verify(bind_id, wrong) for _ in range(5)]
    assert [r.status_code for r in answers] == [400] * 5
    assert answers[0].json()["message"] == "验证码不正确，还可以再输入4次"
    assert answers[4].json()["message"].startswith("验证码错误次数过多")
    sixth = await me.verify(bind_id, code)
    assert sixth.status_code == 400 and sixth.json()["field"] == "bind_id"
    assert await bindings(services) == 0


async def test_a_used_code_cannot_be_replayed(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    code = await me.last_code(person(ELDER)["phone"])
    assert (await me.verify(bind_id, code)).status_code == 200
    again = await me.verify(bind_id, code)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert await bindings(services) == 1


async def test_an_expired_code_is_refused(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    code = await me.last_code(person(ELDER)["phone"])
    clock.advance(seconds=301)
    r = await me.verify(bind_id, code)
    assert r.status_code == 400 and "过期" in r.json()["message"]
    assert await bindings(services) == 0


async def test_someone_elses_bind_id_is_not_found_and_costs_the_owner_nothing(resident: Any, people: Any) -> None:
    _, services = people
    victim = await resident("本人")
    attacker = await resident("他人")
    bind_id = (await victim.start(ELDER)).json()["bind_id"]
    code = await victim.last_code(person(ELDER)["phone"])
    for guess in (code, "000000"):
        r = await attacker.verify(bind_id, guess)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert (await attacker.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 404
    assert await audit_reasons(services, "bind_verify") == ["unknown_bind_id", "unknown_bind_id"]
    assert await audit_reasons(services, "bind_resend") == ["unknown_bind_id"]
    async with services.sessions() as s:
        assert await s.scalar(select(BindAttempt.tries)) == 0
    assert await bindings(services) == 0
    assert (await victim.verify(bind_id, code)).status_code == 200  # the real owner is not locked out


async def test_sms_bombing_is_refused_by_the_minute_and_by_the_hour(resident: Any, people: Any, clock: Any) -> None:
    me = await resident()
    phone = person(ELDER)["phone"]
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    soon = await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})
    assert soon.status_code == 429 and soon.json()["error"] == "rate_limited"
    assert 1 <= int(soon.headers["Retry-After"]) <= 60
    for _ in range(4):  # codes 2..5 within the hour, a minute apart
        clock.advance(seconds=61)
        assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 200
    clock.advance(seconds=61)
    sixth = await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})
    assert sixth.status_code == 429 and int(sixth.headers["Retry-After"]) > 60
    assert len(await me.inbox(phone)) == 5
    # A new code replaced the old: only the newest one works.
    clock.advance(seconds=3600)
    messages = await me.inbox(phone)
    assert len({m["text"] for m in messages}) == 5


async def test_resends_use_up_the_persons_start_allowance(resident: Any, people: Any, clock: Any) -> None:
    # Ten codes a day per person, whether asked for by a start or a resend: otherwise each of the
    # ten starts could be resent until its phone's own limits (10 a day) stopped it.
    _, services = people
    assert services.settings.limits.bind_starts_per_identity_day == 10
    me = await resident()
    for n in (ELDER, TEEN):  # two phones, five codes each: no phone reaches its own limits
        bind_id = (await me.start(n)).json()["bind_id"]
        for _ in range(4):
            clock.advance(seconds=61)
            assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 200
        assert len(await me.inbox(person(n)["phone"])) == 5
    clock.advance(seconds=3601)  # the phones' hourly windows are free again, the person's day is not
    await me.login()  # (the login session timed out meanwhile)
    again = await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})
    eleventh = await me.start(PARENT_OF_CHILD_PHONE)
    for refused in (again, eleventh):
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 3600
    assert len(await me.inbox(person(TEEN)["phone"])) == 5
    assert await me.inbox(person(PARENT_OF_CHILD_PHONE)["phone"]) == []
    assert (await audit_reasons(services, "bind_resend"))[-1] == "rate_limited"


async def test_a_resend_refused_within_the_minute_costs_no_allowance(resident: Any, people: Any, clock: Any) -> None:
    # An impatient press of 重新发送, again and again, must not use up the day's ten binds.
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    for _ in range(12):
        early = await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})
        assert early.status_code == 429 and int(early.headers["Retry-After"]) <= 60
    clock.advance(seconds=61)
    assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 200
    assert (await me.start(TEEN)).status_code == 201
    assert len(await me.inbox(person(ELDER)["phone"])) == 2


async def test_a_malformed_code_is_audited_and_costs_no_try(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    for typed in ("12345", "１２３４５６", "12 345", "abcdef"):
        r = await me.verify(bind_id, typed)
        assert r.status_code == 400 and r.json()["field"] == "code", typed
        assert r.json()["message"] == "请输入短信中的6位数字验证码"
    assert await audit_reasons(services, "bind_verify") == ["bad_input"] * 4
    async with services.sessions() as s:
        assert await s.scalar(select(BindAttempt.tries)) == 0
    code = await me.last_code(person(ELDER)["phone"])
    assert (await me.verify(bind_id, code)).status_code == 200


async def test_a_bad_check_digit_is_bad_input_on_the_field_before_any_lookup(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    good = person(ELDER)["id_number"]
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    r = await me.start(ELDER, id_number=bad)
    assert r.status_code == 400 and r.json()["error"] == "bad_input" and r.json()["field"] == "id_number"
    assert bad not in r.text
    # A failed attempt all the same: audited with the field, never its value, and no archive.
    async with services.sessions() as s:
        (row,) = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "bind_start"))).all()
    assert (row.result, row.reason, row.archive_id, row.detail) == ("failed", "bad_input", None, {"field": "id_number"})
    assert await me.inbox(person(ELDER)["phone"]) == []


async def test_sql_and_html_in_the_name_are_just_a_mismatch(resident: Any) -> None:
    me = await resident()
    r = await me.start(ELDER, name="刘'; DROP TABLE archives;--")
    assert r.status_code == 400 and r.json()["error"] == "mismatch"
    r = await me.start(ELDER, name="<script>alert(1)</script>")
    assert r.status_code == 400 and "<script>" not in r.text


async def test_malformed_and_oversized_bodies(resident: Any) -> None:
    me = await resident()
    headers = {"Authorization": f"Bearer {me.token}", "Content-Type": "application/json"}
    r = await me.client.post(me.base + "/api/v1/bind/start", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = await me.client.post(me.base + "/api/v1/bind/start", content=b"[1]", headers=headers)
    assert r.status_code == 400
    big = b'{"name": "' + b"x" * 70_000 + b'"}'
    r = await me.client.post(me.base + "/api/v1/bind/start", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "too_large"


async def test_without_login_nothing_happens(people: Any) -> None:
    base, _ = people
    async with httpx.AsyncClient(trust_env=False) as client:
        r = await client.post(base + "/api/v1/bind/start", json={"name": "刘淑珍"})
        assert r.status_code == 401 and r.json()["error"] == "not_logged_in"
        r = await client.post(base + "/api/v1/bind/start", json={}, headers={"Authorization": "Bearer " + "0" * 32})
        assert r.status_code == 401


async def test_a_staff_session_is_not_a_residents(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    await me.bind(ELDER)
    async with services.sessions() as s:
        identity_id = await s.scalar(select(Identity.id).where(Identity.channel == "mp"))
    # The same number as a staff account's id must not open that identity's archives.
    staff = await services.web_sessions.open(identity_id, kind="staff")
    r = await me.client.get(me.base + "/api/v1/archives", headers={"Authorization": f"Bearer {staff}"})
    assert r.status_code == 401 and r.json()["error"] == "not_logged_in"


async def test_five_archives_per_identity(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    me = await resident()
    limit = services.settings.limits.archives_per_identity
    assert limit == 5
    # Bind the same four-archive family repeatedly is not possible; fill up with fresh archives instead.

    extra = [archive(100 + i, phone=f"1370635{i:04d}") for i in range(6)]
    report = await services.ingest.import_objects([__import__("json").dumps(a, ensure_ascii=False) for a in extra])
    assert report.exit_code == 0
    for a in extra[:5]:
        started = await me.call(
            "POST", "/api/v1/bind/start", {"name": a["name"], "id_number": a["id_number"], "phone": a["phone"]}
        )
        assert started.status_code == 201, started.text
        code = await me.last_code(a["phone"])
        assert (await me.verify(started.json()["bind_id"], code)).status_code == 200
    a = extra[5]
    sixth = await me.call(
        "POST", "/api/v1/bind/start", {"name": a["name"], "id_number": a["id_number"], "phone": a["phone"]}
    )
    assert sixth.status_code == 409 and "最多绑定5份" in sixth.json()["message"]
    assert await me.inbox(a["phone"]) == []


async def test_redis_down_means_503_and_nothing_sent(resident: Any, people: Any, tmp_path: Any, db_url: str) -> None:
    """Limits fail closed: with the counters unreachable no code goes out (service level), and the
    whole app answers 503 rather than "log in again" (HTTP level)."""
    _, services = people
    me = await resident()
    async with services.sessions() as s:
        identity_id = await s.scalar(select(Identity.id).where(Identity.channel == "mp"))
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        binding = BindingService(
            services.settings,
            sessions=services.sessions,
            keyring=services.keyring,
            limits=RateLimits(dead, services.clock),
            sms=services.sms,
            consent=services.consent,
            clock=services.clock,
        )
        elder = person(ELDER)
        req = parse_bind_request({**elder, "relation": "self"}, services.clock.today())
        caller = Caller(identity_id, "req", "127.0.0.1")
        try:
            await binding.start(caller, req)
            raise AssertionError("a code was started without Redis")
        except Unavailable:
            pass
    finally:
        await dead.aclose()
    assert await me.inbox(person(ELDER)["phone"]) == []
    async with services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(BindAttempt)) == 0

    settings = make_settings(tmp_path / "dead", db_url, "redis://127.0.0.1:1/0")
    down = await build_services(settings, clock=services.clock)
    try:
        async with serving(make_app(down)) as base:
            r = await me.client.post(
                base + "/api/v1/bind/start", json={"name": "刘淑珍"}, headers={"Authorization": f"Bearer {me.token}"}
            )
            assert r.status_code == 503 and r.json()["error"] == "unavailable"
    finally:
        await down.close()
    assert await me.inbox(person(ELDER)["phone"]) == []


async def test_five_identities_per_archive(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    for i in range(5):
        who = await resident(f"家人{i}")
        await who.bind(ELDER, relation="self" if i == 0 else "child")
        clock.advance(seconds=61)
    sixth = await resident("第六人")
    r = await sixth.start(ELDER, relation="other")
    assert r.status_code == 409 and "已绑定5个微信" in r.json()["message"]
    assert len(await sixth.inbox(person(ELDER)["phone"])) == 5
    assert await bindings(services) == 5


async def test_concurrent_guesses_share_the_five_tries(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    code = await me.last_code(person(ELDER)["phone"])
    wrong = [f"{(int(code) + k) % 10**6:06d}" for k in range(1, 21)]
    answers = await asyncio.gather(*(me.verify(bind_id, guess) for guess in wrong))
    assert {r.status_code for r in answers} == {400}
    async with services.sessions() as s:
        assert await s.scalar(select(BindAttempt.tries)) == 5
    assert (await me.verify(bind_id, code)).status_code == 400
    assert await bindings(services) == 0


async def test_an_attempt_stuck_in_sending_can_be_resent_later(resident: Any, people: Any, clock: Any) -> None:
    """The provider took the code but its outcome was never recorded: not a dead end for good."""
    _, services = people
    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    async with services.sessions.begin() as s:
        (await s.scalars(select(BindAttempt))).one().status = "sending"
    assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 409
    clock.advance(seconds=61)
    assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 200
    code = await me.last_code(person(ELDER)["phone"])
    assert (await me.verify(bind_id, code)).status_code == 200


async def test_a_whole_binding_leaves_no_id_number_phone_name_or_code_in_the_logs(
    resident: Any, people: Any, caplog: Any
) -> None:
    """Every log line of a mismatch, a hidden archive, a wrong code, a bind, the list and an unbind."""
    import logging

    caplog.set_level(logging.DEBUG)
    me = await resident("刘阿姨")
    elder = person(ELDER)
    assert (await me.start(ELDER, name="刘淑芬")).status_code == 400
    assert (await me.start(SENSITIVE)).status_code == 403
    started = await me.start(ELDER)
    bind_id = started.json()["bind_id"]
    code = await me.last_code(elder["phone"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert (await me.verify(bind_id, wrong)).status_code == 400
    assert (await me.verify(bind_id, code)).status_code == 200
    (bound,) = await me.archives()
    assert (await me.call("DELETE", f"/api/v1/bindings/{bound['binding_id']}")).status_code == 204
    assert "/api/v1/bind/start" in caplog.text  # the requests were logged, just not their contents
    secrets = [
        elder["id_number"],
        elder["phone"],
        elder["name"],
        "刘淑芬",
        person(SENSITIVE)["id_number"],
        person(SENSITIVE)["name"],
        code,
        wrong,
        me.token,
    ]
    # This test's own client reads the sandbox's SMS inbox by phone: its request lines are not ours.
    ours = "\n".join(r.getMessage() for r in caplog.records if "/sandbox/api/sms?phone=" not in r.getMessage())
    leaked = [s for s in secrets if s in ours]
    assert not leaked
