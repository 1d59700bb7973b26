"""``/wechat`` over HTTP through the real app: statuses for bad input, identical answers to retries,
and a server that keeps serving after each refusal. The app has the sample's EncodingAESKey, so pushes
go encrypted; plaintext mode is served by an app configured without a key."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import make_settings
from local_server import serving
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from wechat_sample import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    MSG_SIGNATURE,
    OPENID,
    SAMPLE_BODY,
    SAMPLE_QUERY,
    TIMESTAMP,
    WECHAT_SETTINGS,
    element,
    fixture,
    open_envelope,
    plain_query,
    safe_request,
)

from wechat_backend.app import make_app
from wechat_backend.clock import FixedClock
from wechat_backend.services import Services, build_services
from wechat_backend.wechat.callback import PLAINTEXT_REFUSED_TTL, plaintext_refused_key


async def fetch(base_url: str, query: dict[str, str], body: bytes | str | None = None) -> HTTPResponse:
    method = "GET" if body is None else "POST"
    url = f"{base_url}/wechat?{urlencode(query)}"
    return await AsyncHTTPClient().fetch(url, method=method, body=body, raise_error=False)


@pytest.fixture
async def plain_app(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock
) -> AsyncIterator[tuple[str, Services]]:
    """``(base_url, services)`` of an app configured without an EncodingAESKey: plaintext mode.
    (Demo mode generates a missing key when settings load, so the key is taken out afterwards.)"""
    settings = make_settings(
        tmp_path, db_url, redis_url, wechat=WECHAT_SETTINGS, server={"public_base_url": "https://jkda.example.cn"}
    )
    settings = dataclasses.replace(settings, wechat=dataclasses.replace(settings.wechat, encoding_aes_key=""))
    services = await build_services(settings, clock=clock)
    try:
        async with serving(make_app(services)) as base:
            yield base, services
    finally:
        await services.close()


async def assert_still_serving(base_url: str) -> None:
    r = await fetch(base_url, *safe_request(fixture("event_click", CreateTime="1409735699")))
    assert r.code == 200 and "查看健康档案" in element(open_envelope(r.body.decode()), "Content")
    health = await AsyncHTTPClient().fetch(base_url + "/healthz", raise_error=False)
    assert health.code == 200 and json.loads(health.body) == {"status": "ok"}


async def test_echo_check_answers_echostr_as_plain_text(base_url: str) -> None:
    r = await fetch(base_url, {**plain_query(), "echostr": "5837397520665436492"})
    assert r.code == 200 and r.body == b"5837397520665436492"
    assert r.headers["Content-Type"].startswith("text/plain")
    bad = await fetch(base_url, {**plain_query(), "signature": "0" * 40, "echostr": "1"})
    assert bad.code == 403


async def test_the_published_sample_gets_a_reply_that_decrypts_independently(base_url: str) -> None:
    r = await fetch(base_url, SAMPLE_QUERY, SAMPLE_BODY)  # no cookie, no XSRF token: the signature is enough
    assert r.code == 200 and r.headers["Content-Type"].startswith("application/xml")
    inner = open_envelope(r.body.decode())
    assert element(inner, "ToUserName") == OPENID
    assert "绑定、档案、随访、留言 或 帮助" in element(inner, "Content")


async def test_without_a_key_plaintext_mode_answers_in_plaintext(plain_app: tuple[str, Services]) -> None:
    base, services = plain_app
    r = await fetch(base, plain_query(), fixture("event_subscribe"))
    assert r.code == 200
    assert "https://jkda.example.cn/r/home" in element(r.body.decode(), "Content")
    r = await fetch(base, plain_query(), fixture("event_unsubscribe", CreateTime="1409735690"))
    assert r.code == 200 and r.body == b"success"
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and not identity.subscribed
    assert services.redis is not None
    assert await services.redis.client.exists(plaintext_refused_key(services.settings)) == 0


async def test_a_forged_plaintext_unsubscribe_is_refused_while_a_key_is_configured(
    base_url: str, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    r = await fetch(base_url, *safe_request(fixture("event_subscribe")))
    assert r.code == 200 and "欢迎关注" in element(open_envelope(r.body.decode()), "Content")
    # one logged URL's signature (token + timestamp + nonce) and a body of the forger's choosing
    forged = fixture("event_unsubscribe", CreateTime="1409735690")
    with caplog.at_level(logging.INFO):
        r = await fetch(base_url, plain_query(), forged)
    assert r.code == 403 and b"Traceback" not in r.body
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and identity.subscribed
    assert "plaintext push refused" in caplog.text and OPENID not in caplog.text
    assert services.redis is not None
    mark = plaintext_refused_key(services.settings)
    assert await services.redis.client.get(mark) == str(int(services.clock.time())).encode()
    assert 0 < await services.redis.client.ttl(mark) <= PLAINTEXT_REFUSED_TTL
    # the same event, encrypted as WeChat sends it in safe mode, is acted on
    r = await fetch(base_url, *safe_request(forged))
    assert r.code == 200 and r.body == b"success"
    identity = await services.identities.by_openid("oa", OPENID)
    assert identity is not None and not identity.subscribed


async def test_retries_are_answered_identically_and_processed_once(base_url: str, services: Services) -> None:
    query, body = safe_request(fixture("text", Content="绑定"))
    answers = []
    for _ in range(3):
        r = await fetch(base_url, query, body)
        assert r.code == 200
        answers.append(open_envelope(r.body.decode()))
    assert answers[0] == answers[1] == answers[2]
    assert services.callback.counts["processed"] == 1 and services.callback.counts["retried"] == 2


async def test_unsubscribe_is_answered_with_success(base_url: str) -> None:
    r = await fetch(base_url, *safe_request(fixture("event_unsubscribe")))
    assert r.code == 200 and r.body == b"success"


def _bad_requests() -> list[tuple[str, dict[str, str], bytes, int]]:
    stale = str(int(TIMESTAMP) - 400)
    safe_query, safe_body = safe_request(fixture("text"))
    sample_plaintext_half = {k: v for k, v in SAMPLE_QUERY.items() if k not in ("encrypt_type", "msg_signature")}
    return [
        ("too large", safe_query, fixture("text", Content="长" * 22_000).encode(), 413),
        ("billion laughs", safe_query, BILLION_LAUGHS.encode(), 400),
        ("external entity", safe_query, EXTERNAL_ENTITY.encode(), 400),
        ("malformed", safe_query, b"<xml><MsgType>text</xml>", 400),
        ("not utf-8", safe_query, fixture("text").encode("utf-16"), 400),
        ("doctype inside the encrypted message", *safe_request(EXTERNAL_ENTITY), 400),
        ("no signature", {}, safe_body, 403),
        ("bad signature", {**safe_query, "signature": "f" * 40}, safe_body, 403),
        ("stale timestamp", *safe_request(fixture("text"), timestamp=stale), 403),
        ("bad msg_signature", {**safe_query, "msg_signature": MSG_SIGNATURE}, safe_body, 403),
        ("plaintext while a key is configured", plain_query(), fixture("text").encode(), 403),
        ("the sample's plaintext half, encrypt_type dropped", sample_plaintext_half, SAMPLE_BODY.encode(), 403),
    ]


@pytest.mark.parametrize(
    ("why", "query", "body", "status"), _bad_requests(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_each_bad_input_gets_its_status_and_the_server_keeps_serving(
    base_url: str, why: str, query: dict[str, str], body: bytes, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        r = await fetch(base_url, query, body)
    assert r.code == status, why
    assert b"Traceback" not in r.body and b"root:x:0" not in r.body
    assert OPENID not in caplog.text and "signature=" not in caplog.text
    await assert_still_serving(base_url)


async def test_a_verb_wechat_never_uses_is_refused(base_url: str) -> None:
    url = f"{base_url}/wechat?{urlencode(plain_query())}"
    r = await AsyncHTTPClient().fetch(url, method="PUT", body=fixture("text"), raise_error=False)
    assert r.code == 401


async def test_every_answer_carries_a_request_id(base_url: str) -> None:
    r = await fetch(base_url, *safe_request(fixture("event_click")))
    assert r.code == 200 and len(r.headers["X-Request-Id"]) == 16
