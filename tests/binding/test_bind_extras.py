"""Around the bind flow: a provider that fails, the metrics, the OpenAPI document, the per-IP limit
behind a trusted proxy, and the mini-program and official-account identities of one person."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from handlers import api, archive, ingest, notify_settings
from wechat_backend import audit
from wechat_backend.binding import BindingService, Caller, parse_bind_request
from wechat_backend.db.models import AuditEvent, BindAttempt, Identity
from wechat_backend.errors import RateLimited, Unavailable
from wechat_backend.sms.console import ConsoleSender

from .conftest import ELDER, PARENT_OF_CHILD_PHONE, TEEN, person


async def test_a_provider_failure_marks_the_attempt_failed_and_says_what_to_do(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident()
    async with services.sessions() as s:
        identity_id = await s.scalar(select(Identity.id).where(Identity.channel == "mp"))
    broken = ConsoleSender("http://127.0.0.1:1/", 1.0)  # nothing listens there
    counted: list[tuple[str, str]] = []
    binding = BindingService(
        services.settings,
        sessions=services.sessions,
        keyring=services.keyring,
        limits=services.binding._limits,
        sms=broken,
        consent=services.consent,
        clock=services.clock,
        on_sms=lambda provider, outcome: counted.append((provider, outcome)),
    )
    req = parse_bind_request({**person(ELDER), "relation": "self"}, services.clock.today())
    try:
        await binding.start(Caller(identity_id, "r", "127.0.0.1"), req)
        raise AssertionError("a failed send was reported as sent")
    except Unavailable as exc:
        assert "短信" in exc.message and "稍后" in exc.message
    finally:
        await broken.close()
    async with services.sessions() as s:
        attempt = (await s.scalars(select(BindAttempt))).one()
    assert attempt.status == "failed" and attempt.code_hash is None and attempt.outcome in ("error", "timeout")
    assert counted and counted[0][0] == "console"
    assert await me.inbox(person(ELDER)["phone"]) == []


async def test_the_daily_cap_over_all_phones_refuses_and_raises_the_alarm(
    resident: Any, people: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, services = people
    me = await resident()
    async with services.sessions() as s:
        identity_id = await s.scalar(select(Identity.id).where(Identity.channel == "mp"))
    settings = replace(services.settings, limits=replace(services.settings.limits, codes_per_day_total=2))
    binding = BindingService(
        settings,
        sessions=services.sessions,
        keyring=services.keyring,
        limits=services.binding._limits,
        sms=services.sms,
        consent=services.consent,
        clock=services.clock,
    )
    caller = Caller(identity_id, "r", "127.0.0.1")
    today = services.clock.today()
    for n in (ELDER, TEEN):  # two people, two phones: within the cap
        await binding.start(caller, parse_bind_request({**person(n), "relation": "self"}, today))
    third = person(PARENT_OF_CHILD_PHONE)
    with pytest.raises(RateLimited) as refused:
        await binding.start(caller, parse_bind_request({**third, "relation": "self"}, today))
    assert "上限" in refused.value.message and int(refused.value.headers["Retry-After"]) > 0
    assert await me.inbox(third["phone"]) == []
    assert any(r.levelno == logging.ERROR and "daily cap" in r.getMessage() for r in caplog.records)
    async with services.sessions() as s:
        rows = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "bind_code"))).all()
    reasons = [audit.reason_of(row, services.keyring) for row in rows]
    assert "daily_cap" in reasons


async def test_sends_are_counted_in_metrics(resident: Any, people: Any) -> None:
    me = await resident()
    await me.bind(ELDER)
    r = await me.client.get(me.base + "/metrics")
    assert r.status_code == 200
    assert 'wb_sms_sends_total{outcome="sent",provider="console"} 1.0' in r.text


async def test_openapi_documents_every_api_route(people: Any, resident: Any) -> None:
    me = await resident()
    r = await me.client.get(me.base + "/api/v1/openapi.json")
    assert r.status_code == 200
    doc = json.loads(r.text)
    documented = {path for path in doc["paths"] if path.startswith("/api/")}
    routed = {
        rule.matcher.regex.pattern.rstrip("$").replace("([0-9A-Za-z_-]{1,24})", "{id}")
        for rule in [*api.routes, *archive.routes, *notify_settings.routes, *ingest.routes]
    } - {"/api/v1/openapi.json"}
    assert documented == {path for path in routed if path.startswith("/api/")}
    for path in doc["paths"].values():
        for op in path.values():
            for ref in _refs(op):
                assert ref.split("/")[-1] in doc["components"]["schemas"], ref


def _refs(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == "$ref"] + [r for v in obj.values() for r in _refs(v)]
    if isinstance(obj, list):
        return [r for v in obj for r in _refs(v)]
    return []


async def test_one_person_on_both_channels_sees_the_same_archives(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident("刘阿姨", unionid=True)
    await me.follow_and_web_login()
    bound = await me.bind(ELDER)  # through the mini-program
    async with services.sessions() as s:
        rows = (await s.execute(select(Identity.channel, Identity.unionid))).all()
    unionids = {u for _, u in rows}
    assert sorted(c for c, _ in rows) == ["mp", "oa"] and len(unionids) == 1 and None not in unionids
    # The official-account session (cookie) lists the archive bound through the mini-program.
    r = await me.client.get(me.base + "/api/v1/archives")
    assert r.status_code == 200 and [a["id"] for a in r.json()["archives"]] == [bound["id"]]


async def test_bind_starts_are_limited_per_identity_and_per_client_address(resident: Any, people: Any) -> None:
    _, services = people
    per_identity = services.settings.limits.bind_starts_per_identity_day
    per_ip = services.settings.limits.bind_starts_per_ip_hour
    assert (per_identity, per_ip) == (10, 30)
    guessers = [await resident(f"试探{i}") for i in range(4)]
    answers = []
    for who in guessers:
        for _ in range(per_identity + 1):
            answers.append((await who.start(ELDER, name="不对")).status_code)
    # Each identity: 10 refused as mismatch, the 11th rate limited; after 30 from this address, all 429.
    assert answers[:11] == [400] * 10 + [429]
    assert answers.count(400) == per_ip and answers[-1] == 429
