"""The WeChat callback service, called directly: WeChat's sample values, dedupe, the 5 s budget.

The settings carry the sample's EncodingAESKey, as production must, so pushes go encrypted (safe
mode); plaintext mode is tested on a callback configured without a key, as it is only accepted then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from ingest_lines import COUNTY, archive, institution
from sqlalchemy import select
from wechat_sample import (
    BILLION_LAUGHS,
    ENCRYPT,
    EXTERNAL_ENTITY,
    MSG_SIGNATURE,
    NONCE,
    OPENID,
    SAMPLE_BODY,
    SAMPLE_QUERY,
    SIGNATURE,
    TIMESTAMP,
    TOKEN,
    element,
    encrypt,
    fixture,
    open_envelope,
    plain_query,
    safe_request,
    sign,
)

from wechat_backend.config import Settings
from wechat_backend.db.models import Archive, Binding, DueItem, Notification
from wechat_backend.errors import BadInput, Forbidden, TooLarge
from wechat_backend.services import Services
from wechat_backend.wechat import replies
from wechat_backend.wechat.callback import PLAINTEXT_REFUSED_TTL, CallbackService, plaintext_refused_key
from wechat_backend.wechat.contact import CONTACT_TTL, contact_key
from wechat_backend.wechat.dedupe import dedup_key
from wechat_backend.wechat.inbound import dedup_id
from wechat_backend.wechat.xml_guard import declares_markup

HOME = "https://jkda.example.cn/r/home"


def at(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def callback_with(services: Services, settings: Settings | None = None, **kw: object) -> CallbackService:
    parts: dict[str, object] = {
        "sessions": services.sessions,
        "redis": services.redis.client if services.redis else None,
        "identities": services.identities,
        "clock": services.clock,
    }
    return CallbackService(settings or services.settings, **{**parts, **kw})  # type: ignore[arg-type]


def plain_callback(services: Services, **kw: object) -> CallbackService:
    """A callback configured without an EncodingAESKey: plaintext mode, the only mode it accepts."""
    wechat = dataclasses.replace(services.settings.wechat, encoding_aes_key="")
    return callback_with(services, settings=dataclasses.replace(services.settings, wechat=wechat), **kw)


async def push(cb: CallbackService, xml: str) -> str:
    """A push as WeChat sends it in safe mode; the text of the reply ('' for success)."""
    query, body = safe_request(xml)
    reply = await cb.handle(query, body)
    return "" if reply.body == "success" else element(open_envelope(reply.body), "Content")


async def push_plain(cb: CallbackService, xml: str) -> str:
    """A plaintext-mode push (for a callback configured without a key); the text of the reply."""
    reply = await cb.handle(plain_query(), xml.encode())
    return "" if reply.body == "success" else element(reply.body, "Content")


async def add_institution(services: Services, **over: object) -> None:
    report = await services.ingest.import_objects([json.dumps(institution(**over))])
    assert report.inserted == 1


def no_database() -> None:
    """A session factory for a callback that must answer without the database."""
    raise AssertionError("the database was used")


async def cached_line(services: Services, openid: str = OPENID) -> str | None:
    assert services.redis is not None
    value = await services.redis.client.get(contact_key(services.settings, openid))
    return value.decode() if value is not None else None


# --------------------------------------------------------------------------- WeChat's sample


async def test_the_published_sample_is_decrypted_and_the_reply_decrypts_independently(services: Services) -> None:
    reply = await services.callback.handle(SAMPLE_QUERY, SAMPLE_BODY.encode())
    assert reply.content_type.startswith("application/xml")
    inner = open_envelope(reply.body)  # our own AES and signature code, not wechatpy's
    assert element(inner, "ToUserName") == OPENID
    assert element(inner, "FromUserName") == "gh_10f6c3c3ac5a"
    assert element(inner, "MsgType") == "text"
    assert element(inner, "CreateTime") == str(int(services.clock.time()))
    assert element(inner, "Content") == replies.fallback(replies.Contact())  # "abcdteT" is no keyword


async def test_the_sample_decrypts_in_pure_safe_mode_too(services: Services) -> None:
    body = f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>"
    reply = await services.callback.handle(SAMPLE_QUERY, body.encode())
    assert "没有看懂" in element(open_envelope(reply.body), "Content")


@pytest.mark.parametrize(
    "change",
    [
        {"msg_signature": MSG_SIGNATURE[:-1] + "0"},
        {"signature": SIGNATURE[:-1] + "0"},
        {"msg_signature": ""},
        {"signature": ""},
        {"nonce": "1320562133"},
        {"timestamp": "abc"},
    ],
)
async def test_a_wrong_signature_is_forbidden(services: Services, change: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        await services.callback.handle({**SAMPLE_QUERY, **change}, SAMPLE_BODY.encode())


@pytest.mark.parametrize("seconds", [301, -301, 10_000_000])
async def test_a_timestamp_more_than_five_minutes_off_is_forbidden(services: Services, seconds: int) -> None:
    services.clock.at = at(int(TIMESTAMP) + seconds)  # type: ignore[attr-defined]
    with pytest.raises(Forbidden):
        await services.callback.handle(SAMPLE_QUERY, SAMPLE_BODY.encode())
    with pytest.raises(Forbidden):
        services.callback.echo({**plain_query(), "echostr": "123"})


async def test_within_five_minutes_the_sample_is_accepted(services: Services) -> None:
    services.clock.at = at(int(TIMESTAMP) + 299)  # type: ignore[attr-defined]
    assert (await services.callback.handle(SAMPLE_QUERY, SAMPLE_BODY.encode())).body.startswith("<xml>")


async def test_a_message_for_another_account_is_forbidden(services: Services) -> None:
    query, _ = safe_request(fixture("text"))
    encrypted = encrypt(fixture("text"), app_id="wx0000000000000000")
    query["msg_signature"] = sign(TOKEN, TIMESTAMP, NONCE, encrypted)
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    with pytest.raises(Forbidden):
        await services.callback.handle(query, body.encode())


# --------------------------------------------------------------------------- echo check


async def test_echo_check_returns_echostr_unchanged(services: Services) -> None:
    assert services.callback.echo({**plain_query(), "echostr": "5837397520665436492"}) == "5837397520665436492"
    # plaintext in every mode: the same answer when WeChat adds encrypt_type
    assert services.callback.echo({**plain_query(), "echostr": "42", "encrypt_type": "aes"}) == "42"


async def test_echo_check_refuses_a_bad_signature_or_a_missing_echostr(services: Services) -> None:
    with pytest.raises(Forbidden):
        services.callback.echo({**plain_query(), "signature": "0" * 40, "echostr": "42"})
    with pytest.raises(Forbidden):
        services.callback.echo({"echostr": "42"})
    with pytest.raises(BadInput):
        services.callback.echo(plain_query())


# --------------------------------------------------------------------------- plaintext while a key is configured

OTHER = "oOtherFollower0000000000000"


async def subscribed(services: Services, openid: str = OPENID) -> bool | None:
    identity = await services.identities.by_openid("oa", openid)
    return None if identity is None else identity.subscribed


async def marker(services: Services) -> tuple[bytes | None, int]:
    assert services.redis is not None
    mark = plaintext_refused_key(services.settings)
    return await services.redis.client.get(mark), await services.redis.client.ttl(mark)


async def test_a_signed_plaintext_unsubscribe_is_refused_while_a_key_is_configured(services: Services) -> None:
    # The attack: `signature` covers token, timestamp and nonce only, so one logged URL signs any body.
    cb = services.callback
    await push(cb, fixture("event_subscribe"))
    forged = fixture("event_unsubscribe", CreateTime="1409735690").encode()
    with pytest.raises(Forbidden):
        await cb.handle(plain_query(), forged)
    assert await subscribed(services) is True
    assert cb.counts["processed"] == 1 and cb.counts["plaintext_refused"] == 1
    # the same event as WeChat sends it, encrypted, is acted on
    assert await push(cb, fixture("event_unsubscribe", CreateTime="1409735690")) == ""
    assert await subscribed(services) is False


@pytest.mark.parametrize("body", [fixture("text"), BILLION_LAUGHS, "not xml"], ids=["text", "entities", "not-xml"])
async def test_a_plaintext_push_is_refused_before_its_body_is_parsed_or_deduplicated(
    services: Services, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    cb = services.callback
    with caplog.at_level(logging.INFO, logger="wechat_backend"), pytest.raises(Forbidden):
        await cb.handle(plain_query(), body.encode())  # Forbidden, not BadInput: never parsed
    assert cb.counts["processed"] == 0 and cb.counts["retried"] == 0
    assert services.redis is not None
    prefix = services.settings.redis.key_prefix
    keys = [k.decode() async for k in services.redis.client.scan_iter(match=f"{prefix}:*")]
    assert keys == [plaintext_refused_key(services.settings)]  # no dedupe key, no contact line
    # a WARNING without personal data, and a marker holding when, for `wechat-backend check`
    (record,) = [r for r in caplog.records if "plaintext push refused" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert OPENID not in caplog.text and "1409735668" not in caplog.text
    value, ttl = await marker(services)
    assert value == str(int(services.clock.time())).encode()
    assert PLAINTEXT_REFUSED_TTL - 60 <= ttl <= PLAINTEXT_REFUSED_TTL


async def test_the_refusal_does_not_depend_on_redis(services: Services, dead_redis: aioredis.Redis) -> None:
    for cb in (callback_with(services, redis=dead_redis), callback_with(services, redis=None)):
        with pytest.raises(Forbidden):
            await cb.handle(plain_query(), fixture("event_unsubscribe").encode())
        assert cb.counts["processed"] == 0
    assert await subscribed(services) is None


async def test_an_unsigned_plaintext_push_leaves_no_marker(services: Services) -> None:
    with pytest.raises(Forbidden):
        await services.callback.handle({**plain_query(), "signature": "0" * 40}, fixture("text").encode())
    assert await marker(services) == (None, -2)


async def test_safe_mode_needs_msg_signature_before_the_body_is_parsed(services: Services) -> None:
    query, _ = safe_request(fixture("text"))
    del query["msg_signature"]
    with pytest.raises(Forbidden):
        await services.callback.handle(query, b"not xml")


async def test_compatible_mode_acts_only_on_the_encrypted_content(services: Services) -> None:
    cb = services.callback
    await push(cb, fixture("event_subscribe"))
    # 兼容模式: the plaintext fields and <Encrypt> in one body. Here they disagree: the plaintext
    # fields say OPENID unsubscribed, the encrypted message says OTHER followed.
    encrypted = encrypt(fixture("event_subscribe", FromUserName=OTHER, CreateTime="1409735690"))
    outer = fixture("event_unsubscribe", CreateTime="1409735690")
    body = outer.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    compatible = {**plain_query(), "encrypt_type": "aes", "msg_signature": sign(TOKEN, TIMESTAMP, NONCE, encrypted)}
    # replayed without encrypt_type and msg_signature, the plaintext half is refused
    with pytest.raises(Forbidden):
        await cb.handle(plain_query(), body)
    assert await subscribed(services) is True and await subscribed(services, OTHER) is None
    reply = open_envelope((await cb.handle(compatible, body)).body)
    assert element(reply, "ToUserName") == OTHER and "欢迎关注" in element(reply, "Content")
    assert await subscribed(services) is True and await subscribed(services, OTHER) is True


async def test_without_a_key_plaintext_mode_works_and_safe_mode_is_refused(services: Services) -> None:
    cb = plain_callback(services)
    assert "欢迎关注" in await push_plain(cb, fixture("event_subscribe"))
    assert await push_plain(cb, fixture("event_unsubscribe", CreateTime="1409735690")) == ""
    assert await subscribed(services) is False
    assert cb.counts["processed"] == 2 and cb.counts["plaintext_refused"] == 0
    with pytest.raises(Forbidden):  # nothing to decrypt with
        await cb.handle(*safe_request(fixture("event_subscribe", CreateTime="1409735691")))
    assert await marker(services) == (None, -2)


async def test_without_a_key_compatible_mode_is_read_from_its_plaintext_half(services: Services) -> None:
    """The way to safe mode: the platform switches to compatible mode first, the key is set after;
    in between, pushes still arrive and are answered, in plaintext as compatible mode accepts."""
    cb = plain_callback(services)
    outer = fixture("event_subscribe")
    body = outer.replace("</xml>", "<Encrypt><![CDATA[c2VhbGVk]]></Encrypt></xml>").encode()
    query = {**plain_query(), "encrypt_type": "aes", "msg_signature": "0" * 40}
    reply = (await cb.handle(query, body)).body
    assert "欢迎关注" in element(reply, "Content") and "<Encrypt>" not in reply
    assert await subscribed(services) is True


# --------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<xml><a></xml>", "not xml", "<other/>", ""])
async def test_dangerous_or_malformed_xml_is_bad_input(services: Services, body: str) -> None:
    # plaintext mode (no key): the body itself; safe mode: the outer body, parsed before decrypting
    with pytest.raises(BadInput):
        await plain_callback(services).handle(plain_query(), body.encode())
    safe_query, _ = safe_request(fixture("text"))
    with pytest.raises(BadInput):
        await services.callback.handle(safe_query, body.encode())


async def test_a_doctype_inside_the_encrypted_message_is_bad_input(services: Services) -> None:
    query, body = safe_request(EXTERNAL_ENTITY)
    with pytest.raises(BadInput):
        await services.callback.handle(query, body)


async def test_a_body_over_64_kib_is_too_large_before_anything_else(services: Services) -> None:
    body = fixture("text", Content="长" * 22_000).encode()
    assert len(body) > 65536
    with pytest.raises(TooLarge):
        await services.callback.handle({}, body)  # refused before the signature is even looked at


async def test_not_utf8_and_missing_fields_are_bad_input(services: Services) -> None:
    plain = plain_callback(services)
    with pytest.raises(BadInput):
        await plain.handle(plain_query(), fixture("text").encode("utf-16"))
    no_sender = fixture("text").replace("<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>", "")
    with pytest.raises(BadInput):
        await plain.handle(plain_query(), no_sender.encode())
    with pytest.raises(BadInput):
        await plain.handle(plain_query(), fixture("text", CreateTime="yesterday").encode())
    # the same inside the encrypted message (safe mode)
    for inner in (no_sender, fixture("text", CreateTime="yesterday")):
        with pytest.raises(BadInput):
            await services.callback.handle(*safe_request(inner))
    with pytest.raises(BadInput):
        await services.callback.handle(safe_request(fixture("text"))[0], fixture("text").encode("utf-16"))
    query, _ = safe_request(fixture("text"))
    for garbage in ("not base64!", "QUJD", encrypt("")[:-4] + "AAA="):
        query["msg_signature"] = sign(TOKEN, TIMESTAMP, NONCE, garbage)
        with pytest.raises((BadInput, Forbidden)):
            await services.callback.handle(query, f"<xml><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>".encode())


def test_markup_declarations_are_found_outside_cdata_and_comments_only() -> None:
    assert declares_markup("<!DOCTYPE xml><xml/>")
    assert declares_markup('<xml><!ENTITY a "b"></xml>')
    assert declares_markup("<xml><![CDATA[unterminated</xml>")
    assert not declares_markup("<xml><!-- <!DOCTYPE --><Content><![CDATA[<!DOCTYPE html>]]></Content></xml>")


async def test_a_resident_may_type_doctype_in_a_text_message(services: Services) -> None:
    assert "没有看懂" in await push(services.callback, fixture("text", Content="<!DOCTYPE html>"))


# --------------------------------------------------------------------------- what the account says


async def test_subscribe_welcomes_with_the_link_and_records_the_follow(services: Services) -> None:
    text = await push(services.callback, fixture("event_subscribe"))
    assert text.startswith("您好，欢迎关注！") and HOME in text
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.subscribed and identity.scene_institution_code is None


async def test_following_through_an_institutions_qr_code_remembers_the_institution(services: Services) -> None:
    await add_institution(services)
    text = await push(services.callback, fixture("event_subscribe_scan"))
    assert "莘县燕店镇卫生院" in text and HOME in text
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.subscribed and identity.scene_institution_code == "371522001"
    # the fallback now names that institution's consultation phone
    fallback = await push(services.callback, fixture("text", Content="今天天气怎么样", MsgId="9"))
    assert "0635-7123456" in fallback and "莘县燕店镇卫生院" in fallback


async def test_an_unknown_scene_is_not_credited(services: Services) -> None:
    text = await push(services.callback, fixture("event_subscribe_scan", EventKey="qrscene_999999999"))
    assert HOME in text
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.subscribed and identity.scene_institution_code is None


async def test_a_follower_scanning_an_institution_code_is_credited_once(services: Services) -> None:
    await add_institution(services)
    await add_institution(services, upstream_id="inst-2", code="371522002", name="莘县王奉镇卫生院")
    await push(services.callback, fixture("event_subscribe"))
    await push(services.callback, fixture("event_scan", CreateTime="1409735670"))
    await push(services.callback, fixture("event_scan", CreateTime="1409735671", EventKey="371522002"))
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.scene_institution_code == "371522001"


async def test_unsubscribe_marks_the_identity_and_says_nothing(services: Services) -> None:
    await push(services.callback, fixture("event_subscribe"))
    assert await push(services.callback, fixture("event_unsubscribe", CreateTime="1409735690")) == ""
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and not identity.subscribed


async def test_unsubscribe_skips_every_push_still_waiting_for_the_follower(services: Services) -> None:
    await push(services.callback, fixture("event_subscribe"))
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None
    now = services.clock.now()
    async with services.sessions.begin() as s:
        for key, status in (("a", "pending"), ("b", "pending"), ("c", "sent")):
            s.add(Notification(identity_id=identity.id, kind="followup_due", dedup_key=key, status=status, due_at=now))
    await push(services.callback, fixture("event_unsubscribe", CreateTime="1409735690"))
    async with services.sessions() as s:
        rows = (await s.execute(select(Notification.dedup_key, Notification.status))).all()
    assert sorted(tuple(r) for r in rows) == [("a", "skipped"), ("b", "skipped"), ("c", "sent")]


async def bind_sample_follower(services: Services) -> int:
    """The sample's follower with archive ``arc-1`` bound as 本人 (written straight into the
    database), its county open; returns the archive's row id."""
    lines = [json.dumps(institution()), json.dumps(archive(1))]
    assert (await services.ingest.import_objects(lines)).inserted == 2
    await services.counties.set(COUNTY, opening=True, phase="all")
    identity = await services.identities.upsert("oa", OPENID, subscribed=True)
    async with services.sessions.begin() as s:
        pk = await s.scalar(select(Archive.id).where(Archive.upstream_id == "arc-1"))
        s.add(Binding(identity_id=identity.id, archive_id=pk, relation="self"))
    return pk


async def test_followup_answers_with_the_followers_own_dates_read_afresh_each_time(services: Services) -> None:
    pk = await bind_sample_follower(services)
    before = await push(services.callback, fixture("event_click", EventKey=replies.FOLLOWUP))
    assert before.startswith("随访提醒：暂时没有查到下次随访或体检的日期")
    assert "公众号暂时不发送到期提醒" in before and HOME in before  # no template configured here
    today = services.clock.today()
    async with services.sessions.begin() as s:
        s.add(DueItem(archive_id=pk, kind="followup_due", due_on=today + dt.timedelta(days=7), basis_on=today))
    after = await push(services.callback, fixture("event_click", EventKey=replies.FOLLOWUP, CreateTime="1409735670"))
    due = today + dt.timedelta(days=7)
    assert f"本人 · 随访 · {due.year}年{due.month}月{due.day}日" in after  # not a cached answer
    assert services.callback.counts["processed"] == 2


async def test_followup_past_the_budget_is_sent_by_customer_service(services: Services) -> None:
    sent: list[tuple[str, str]] = []

    async def send_custom(openid: str, text: str) -> None:
        sent.append((openid, text))

    cb = callback_with(services, send_custom=send_custom, budget=0.0)
    assert (await cb.handle(*safe_request(fixture("event_click", EventKey=replies.FOLLOWUP)))).body == "success"
    await cb.drain()
    assert sent == [(OPENID, replies.answer(replies.FOLLOWUP, HOME, replies.Contact()))]


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (replies.BIND, "建档时登记的手机号"),
        (replies.ARCHIVE, "查看健康档案"),
        (replies.FOLLOWUP, "您还没有绑定健康档案"),
        (replies.HELP, "回复下面的词语"),
        (replies.FEEDBACK, "发送“留言”加上您的问题"),
        ("NO_SUCH_KEY", "没有看懂"),
    ],
)
async def test_menu_clicks_get_their_answer(services: Services, key: str, says: str) -> None:
    text = await push(services.callback, fixture("event_click", EventKey=key))
    assert says in text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("绑定", "1. 打开 https://jkda.example.cn/r/bind"),
        (" 我想给孩子绑定档案 ", "1. 打开 https://jkda.example.cn/r/bind"),
        ("档案", "查看健康档案：\n" + HOME),
        ("随访", "回复“绑定”查看步骤，或打开：\n" + HOME),
        ("体检", "绑定后，在这里可以看到下次随访、体检的日期"),
        ("帮助", "随访 — 查看下次随访、体检日期和提醒设置"),
        ("？", "绑定 — 绑定本人或家人的健康档案"),
        ("留言", "发送“留言”加上您的问题"),
    ],
)
async def test_text_keywords_get_their_answer(services: Services, content: str, says: str) -> None:
    assert says in await push(services.callback, fixture("text", Content=content))


async def test_anything_else_gets_a_fallback_listing_keywords_and_whom_to_call(services: Services) -> None:
    text = await push(services.callback, fixture("text", Content="你好"))
    assert "绑定、档案、随访、留言 或 帮助" in text
    assert "建档机构（社区卫生服务中心或乡镇卫生院）" in text
    assert "没有看懂" in await push(services.callback, fixture("image"))


async def test_a_view_click_needs_no_answer(services: Services) -> None:
    assert await push(services.callback, fixture("event_view")) == ""


# --------------------------------------------------------------------------- retries


async def test_retries_get_the_same_reply_and_are_processed_once(services: Services) -> None:
    cb = services.callback
    query, body = safe_request(fixture("text", Content="档案"))
    sealed = [(await cb.handle(query, body)).body for _ in range(3)]
    answers = [open_envelope(reply) for reply in sealed]
    assert answers[0] == answers[1] == answers[2]
    assert len({element(reply, "Encrypt") for reply in sealed}) == 3  # each sealed afresh, random prefix
    assert "查看健康档案" in element(answers[0], "Content")
    assert cb.counts["processed"] == 1 and cb.counts["retried"] == 2


async def test_a_retry_while_the_first_is_in_progress_waits_for_its_reply(services: Services) -> None:
    cb = services.callback
    query, body = safe_request(fixture("event_subscribe"))
    first, second = await asyncio.gather(cb.handle(query, body), cb.handle(query, body))
    assert open_envelope(first.body) == open_envelope(second.body)
    assert "欢迎关注" in element(open_envelope(first.body), "Content")
    assert cb.counts["processed"] == 1


async def test_a_retry_still_pending_at_the_deadline_answers_success(services: Services) -> None:
    cb = callback_with(services, budget=0.2)
    fields = {"MsgType": "text", "FromUserName": OPENID, "MsgId": "6054768590064713728"}
    assert services.redis is not None
    await services.redis.client.set(dedup_key(services.settings, dedup_id(fields)), "P", ex=60)
    reply = await cb.handle(*safe_request(fixture("text")))
    assert reply.body == "success" and cb.counts["processed"] == 0


async def test_dedupe_keys_are_prefixed_hashed_and_expire(services: Services) -> None:
    await push(services.callback, fixture("event_click"))
    assert services.redis is not None
    prefix = f"{services.settings.redis.key_prefix}:wechat:dedup:"
    keys = [k.decode() async for k in services.redis.client.scan_iter(match=f"{services.settings.redis.key_prefix}:*")]
    assert len(keys) == 1 and keys[0].startswith(prefix) and OPENID not in keys[0]
    assert 60 <= await services.redis.client.ttl(keys[0]) <= 300


async def test_two_different_clicks_in_one_second_are_both_answered(services: Services) -> None:
    cb = services.callback
    assert "查看健康档案" in await push(cb, fixture("event_click", EventKey=replies.ARCHIVE))
    assert "下次随访、体检的日期" in await push(cb, fixture("event_click", EventKey=replies.FOLLOWUP))
    assert cb.counts["processed"] == 2


# --------------------------------------------------------------------------- budget and Redis failures


async def test_work_past_the_budget_answers_success_and_replies_by_customer_service(services: Services) -> None:
    sent: list[tuple[str, str]] = []

    async def send_custom(openid: str, text: str) -> None:
        sent.append((openid, text))

    cb = callback_with(services, send_custom=send_custom, budget=0.0)
    query, body = safe_request(fixture("event_subscribe"))
    assert (await cb.handle(query, body)).body == "success"
    assert (await cb.handle(query, body)).body == "success"  # the retry: same answer
    await cb.drain()
    assert sent == [(OPENID, replies.welcome(HOME))]
    assert cb.counts["processed"] == 1 and cb.counts["background"] == 1
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.subscribed


async def test_work_past_the_budget_without_a_sender_is_logged_not_raised(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    cb = callback_with(services, budget=0.0)
    with caplog.at_level(logging.INFO, logger="wechat_backend"):
        assert (await cb.handle(*safe_request(fixture("text", Content="帮助")))).body == "success"
        await cb.drain()
    assert "no customer-service sender" in caplog.text and OPENID not in caplog.text


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    yield client
    await client.aclose()


async def test_with_redis_down_the_callback_still_answers_without_dedupe(
    services: Services, dead_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cb = callback_with(services, redis=dead_redis)
    query, body = safe_request(fixture("text", Content="随访"))
    with caplog.at_level(logging.WARNING, logger="wechat_backend"):
        first = open_envelope((await cb.handle(query, body)).body)
        second = open_envelope((await cb.handle(query, body)).body)
    assert element(first, "Content") == element(second, "Content")
    assert cb.counts["processed"] == 2 and cb.counts["no_dedupe"] == 2
    assert "dedupe unavailable" in caplog.text and "text/" in caplog.text
    assert OPENID not in caplog.text and "随访" not in caplog.text


async def test_with_redis_down_the_contact_line_comes_from_the_database(
    services: Services, dead_redis: aioredis.Redis
) -> None:
    await add_institution(services)
    await push(services.callback, fixture("event_subscribe_scan"))
    cb = callback_with(services, redis=dead_redis)
    assert "0635-7123456" in await push(cb, fixture("text", Content="你好"))
    assert cb.counts["processed"] == 1 and cb.counts["no_dedupe"] == 1


@pytest.fixture
async def silent_redis() -> AsyncIterator[aioredis.Redis]:
    """A server that accepts connections and never answers."""
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda reader, writer: accepted.append(writer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)
    yield client
    await client.aclose()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_redis_that_hangs_delays_the_answer_by_half_a_second_at_most(
    services: Services, silent_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cb = callback_with(services, redis=silent_redis)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="wechat_backend"):
        assert "没有看懂" in await push(cb, fixture("text", Content="你好"))
    assert loop.time() - started < 0.9
    assert cb.counts["processed"] == 1 and cb.counts["no_dedupe"] == 1
    assert "dedupe unavailable (TimeoutError)" in caplog.text
    await cb.drain()


async def test_without_redis_configured_the_callback_answers(services: Services) -> None:
    cb = callback_with(services, redis=None)
    assert "欢迎关注" in await push(cb, fixture("event_subscribe"))


# --------------------------------------------------------------------------- the follower's contact line


async def test_after_a_follow_the_contact_line_is_cached_and_messages_need_no_database(services: Services) -> None:
    await add_institution(services)
    await push(services.callback, fixture("event_subscribe_scan"))
    assert await cached_line(services) == "有疑问请拨打莘县燕店镇卫生院咨询电话：0635-7123456"
    cb = callback_with(services, sessions=no_database)
    for n, content in enumerate(("今天天气怎么样", "帮助", "留言", "绑定")):
        text = await push(cb, fixture("text", Content=content, MsgId=str(n)))
        assert ("0635-7123456" in text) == (content != "绑定")
    assert "0635-7123456" in await push(cb, fixture("image"))
    assert cb.counts["processed"] == 5 and cb.counts["no_dedupe"] == 0


async def test_a_follow_without_an_institution_caches_the_general_line(services: Services) -> None:
    await push(services.callback, fixture("event_subscribe"))
    assert await cached_line(services) == replies.contact_line(replies.Contact())
    text = await push(callback_with(services, sessions=no_database), fixture("text", Content="你好"))
    assert text == replies.fallback(replies.Contact())


async def test_when_redis_loses_the_cache_the_database_answers_and_the_line_is_cached_again(
    services: Services,
) -> None:
    await add_institution(services)
    await push(services.callback, fixture("event_subscribe_scan"))
    assert services.redis is not None
    await services.redis.client.flushdb()
    assert "0635-7123456" in await push(services.callback, fixture("text", Content="你好", MsgId="1"))
    assert await cached_line(services) == "有疑问请拨打莘县燕店镇卫生院咨询电话：0635-7123456"
    assert 60 <= await services.redis.client.ttl(contact_key(services.settings, OPENID)) <= CONTACT_TTL
    assert "0635-7123456" in await push(callback_with(services, sessions=no_database), fixture("text", MsgId="2"))


async def test_a_scan_that_credits_an_institution_changes_the_line_at_once(services: Services) -> None:
    await add_institution(services)
    await push(services.callback, fixture("event_subscribe"))
    assert "0635-7123456" not in await push(services.callback, fixture("text", Content="你好", MsgId="1"))
    await push(services.callback, fixture("event_scan", CreateTime="1409735670"))
    assert "0635-7123456" in await push(services.callback, fixture("text", Content="你好", MsgId="2"))


async def test_a_scan_of_a_second_institution_keeps_the_first_ones_line(services: Services) -> None:
    await add_institution(services)
    await add_institution(services, upstream_id="inst-2", code="371522002", name="莘县王奉镇卫生院")
    await push(services.callback, fixture("event_subscribe_scan"))
    assert services.redis is not None
    await services.redis.client.flushdb()
    await push(services.callback, fixture("event_scan", CreateTime="1409735670", EventKey="371522002"))
    assert "莘县燕店镇卫生院" in (await cached_line(services) or "")


async def test_a_message_from_someone_never_seen_reads_the_database_once(services: Services) -> None:
    assert "建档机构（社区卫生服务中心或乡镇卫生院）" in await push(services.callback, fixture("text", MsgId="1"))
    assert await cached_line(services) == replies.contact_line(replies.Contact())
    assert "没有看懂" in await push(callback_with(services, sessions=no_database), fixture("text", MsgId="2"))


async def test_contact_keys_are_prefixed_hashed_and_expire(services: Services) -> None:
    await push(services.callback, fixture("event_subscribe"))
    assert services.redis is not None
    key = contact_key(services.settings, OPENID)
    assert key.startswith(f"{services.settings.redis.key_prefix}:wechat:contact:") and OPENID not in key
    assert CONTACT_TTL - 60 <= await services.redis.client.ttl(key) <= CONTACT_TTL


async def test_a_retry_of_a_message_whose_line_is_read_from_the_database_waits_for_the_reply(
    services: Services,
) -> None:
    cb = services.callback
    query, body = safe_request(fixture("text", Content="留言"))
    first, second = await asyncio.gather(cb.handle(query, body), cb.handle(query, body))
    assert open_envelope(first.body) == open_envelope(second.body)
    assert "发送“留言”加上您的问题" in element(open_envelope(first.body), "Content")
    assert cb.counts["processed"] == 1 and cb.counts["retried"] == 1


async def test_many_messages_at_once_are_each_answered_once(services: Services) -> None:
    cb = services.callback
    await push(cb, fixture("event_subscribe"))
    contents = ["你好", "绑定", "帮助", "档案", "随访", "留言"] * 5
    pushes = [fixture("text", Content=c, MsgId=str(n)) for n, c in enumerate(contents)]
    first = await asyncio.gather(*(push(cb, xml) for xml in pushes))
    again = await asyncio.gather(*(push(cb, xml) for xml in pushes))
    assert first == again
    expected = [replies.answer(replies.keyword_key(c) or "", HOME, replies.Contact()) for c in contents]
    assert first == expected
    assert cb.counts["processed"] == 1 + len(pushes) and cb.counts["retried"] == len(pushes)


async def test_after_redis_forgets_its_scripts_messages_are_still_deduplicated(services: Services) -> None:
    cb = services.callback
    assert "没有看懂" in await push(cb, fixture("text", MsgId="1"))
    assert services.redis is not None
    await services.redis.client.script_flush()
    assert "没有看懂" in await push(cb, fixture("text", MsgId="2"))
    assert "没有看懂" in await push(cb, fixture("text", MsgId="2"))
    assert cb.counts["processed"] == 2 and cb.counts["retried"] == 1 and cb.counts["no_dedupe"] == 0


async def test_a_follower_from_no_institution_is_given_the_citys_phone_when_set(services: Services) -> None:
    service = dataclasses.replace(services.settings.service, consult_phone="0635-12320")
    cb = callback_with(services, settings=dataclasses.replace(services.settings, service=service))
    await push(cb, fixture("event_subscribe"))
    assert "0635-12320" in await push(cb, fixture("text", Content="帮助"))
    # Without it, the general line as before (another follower: the first one's line is cached).
    other = fixture("text", Content="帮助", MsgId="2", FromUserName="oOTHERFOLLOWER")
    assert "0635-12320" not in await push(services.callback, other)
