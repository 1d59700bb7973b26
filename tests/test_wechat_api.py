"""WeChatApi against a stand-in for the remote platform: the shared token, the one bounded retry on
token errors, timeouts, counting, and no secret in any exception or log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from platform_double import APP_ID, APP_SECRET, MP_APP_ID, MP_APP_SECRET, Platform

from wechat_backend.config import MiniprogramSettings, WechatSettings
from wechat_backend.wechat.api import WeChatApi, WeChatApiError, WeChatHttp, WeChatUnavailable, redact_url
from wechat_backend.wechat.token import AccessTokenStore, token_key

CUSTOM = "cgi-bin/message/custom/send"


@pytest.fixture
async def make_api(platform: Platform, redis: aioredis.Redis, prefix: str) -> AsyncIterator[Callable[..., WeChatApi]]:
    """A WeChatApi wired as build_services wires it, with [wechat] overrides; one key prefix per test."""
    made: list[WeChatApi] = []

    def make(with_tokens: bool = True, **wechat: Any) -> WeChatApi:
        settings = WechatSettings(
            **{
                "app_id": APP_ID,
                "app_secret": APP_SECRET,
                "api_base_url": platform.url,
                "open_base_url": platform.url,
                **wechat,
            }
        )
        http = WeChatHttp(settings)
        tokens = AccessTokenStore(settings, redis, http, key_prefix=prefix) if with_tokens else None
        api = WeChatApi(settings, MiniprogramSettings(MP_APP_ID, MP_APP_SECRET), http, tokens)
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


async def test_custom_text_goes_out_as_utf8_json_with_the_shared_token(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    api = make_api()
    await api.send_custom_text("oUSER1", "您好，您的随访记录已更新")
    await api.send_custom_text("oUSER1", "第二条")
    assert platform.received[0] == (
        "custom",
        {"touser": "oUSER1", "msgtype": "text", "text": {"content": "您好，您的随访记录已更新"}},
    )
    assert platform.calls["cgi-bin/token"] == 1  # the second call reuses the cached token


async def test_template_message_wraps_values_and_returns_the_msgid(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    msgid = await make_api().send_template(
        "oUSER1", "TPL1", {"thing1": "高血压随访", "time2": "2026-11-25"}, url="https://wx.example.cn/r/home"
    )
    assert msgid == 200228332
    assert platform.received[-1] == (
        "template",
        {
            "touser": "oUSER1",
            "template_id": "TPL1",
            "data": {"thing1": {"value": "高血压随访"}, "time2": {"value": "2026-11-25"}},
            "url": "https://wx.example.cn/r/home",
        },
    )


async def test_menus_and_tags(make_api: Callable[..., WeChatApi], platform: Platform) -> None:
    api = make_api()
    buttons = [{"type": "view", "name": "我的档案", "url": "https://wx.example.cn/r/home"}]
    await api.create_menu(buttons)
    tag_id = await api.create_tag("staff")
    assert await api.get_tags() == [{"id": tag_id, "name": "staff", "count": 0}]
    assert await api.add_conditional_menu(buttons, tag_id) == "208379533"
    menu = await api.get_menu()
    assert menu["menu"] == {"button": buttons}
    assert menu["conditionalmenu"][0]["matchrule"] == {"tag_id": str(tag_id)}
    openids = [f"o{i:04d}" for i in range(120)]
    await api.tag_users(tag_id, openids)
    batches = [body for kind, body in platform.received if kind == "tagging"]
    assert [len(b["openid_list"]) for b in batches] == [50, 50, 20]
    assert [o for b in batches for o in b["openid_list"]] == openids


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_a_token_error_drops_the_failed_token_and_retries_once(
    make_api: Callable[..., WeChatApi], platform: Platform, errcode: int
) -> None:
    api = make_api()
    await api.send_custom_text("oUSER1", "一")
    platform.fail(CUSTOM, errcode)  # e.g. another system fetched a token behind our back
    await api.send_custom_text("oUSER1", "二")
    assert platform.calls[CUSTOM] == 3  # one, then two-failed, two-retried
    assert platform.calls["cgi-bin/token"] == 2


async def test_a_token_replaced_on_the_platform_is_refreshed_and_the_call_succeeds(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    api = make_api()
    await api.send_custom_text("oUSER1", "一")
    platform.rotate_token()  # our cached token is now dead: the platform answers 40001
    await api.send_custom_text("oUSER1", "二")
    assert [body["text"]["content"] for _, body in platform.received] == ["一", "二"]
    assert platform.calls["cgi-bin/token"] == 2


async def test_a_second_token_error_raises_instead_of_looping(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    platform.fail(CUSTOM, 40001, count=10)
    with pytest.raises(WeChatApiError) as caught:
        await make_api().send_custom_text("oUSER1", "一")
    assert caught.value.errcode == 40001
    assert caught.value.api == CUSTOM
    assert platform.calls[CUSTOM] == 2
    assert platform.calls["cgi-bin/token"] == 2


async def test_a_token_error_keeps_a_newer_token_another_process_stored(
    make_api: Callable[..., WeChatApi], platform: Platform, redis: aioredis.Redis
) -> None:
    api = make_api()
    await api.send_custom_text("oUSER1", "一")
    tokens = api._tokens
    assert isinstance(tokens, AccessTokenStore)
    # Our call leaves with the old token; while it is in flight another process refreshes, so the
    # platform answers 40001 and Redis already holds the newer token.
    platform.fail(CUSTOM, 40001, delay=0.3)
    call = asyncio.create_task(api.send_custom_text("oUSER1", "二"))
    await asyncio.sleep(0.1)
    newer = platform.rotate_token()
    await redis.set(tokens._token_key, newer, ex=7000)
    await call
    assert (await redis.get(tokens._token_key)).decode() == newer  # not thrown away
    assert platform.calls["cgi-bin/token"] == 1
    assert platform.calls[CUSTOM] == 3


async def test_other_error_codes_raise_without_retry_or_refresh(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    errmsg = "response out of time limit or subscription is canceled"
    platform.fail(CUSTOM, 45015, errmsg)
    with pytest.raises(WeChatApiError) as caught:
        await make_api().send_custom_text("oUSER1", "一")
    assert (caught.value.errcode, caught.value.errmsg) == (45015, errmsg)
    assert platform.calls[CUSTOM] == 1
    assert platform.calls["cgi-bin/token"] == 1


async def test_the_token_and_secrets_never_appear_in_errors_or_logs(
    make_api: Callable[..., WeChatApi], platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = make_api()
    await api.send_custom_text("oUSER1", "一")  # httpx logs the request line at INFO
    token = platform.token
    assert token
    platform.fail(CUSTOM, 40001, "invalid credential, access_token {token} is not latest", count=2)
    with pytest.raises(WeChatApiError) as caught:
        await api.send_custom_text("oUSER1", "二")
    used = {token, platform.token}
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert not any(t and t in text for t in used)
        assert APP_SECRET not in text
    assert "40001" in str(caught.value) and "***" in str(caught.value)
    assert "access_token=***" in caplog.text  # the httpx line is there, redacted


async def test_a_slow_platform_raises_a_clear_timeout(make_api: Callable[..., WeChatApi], platform: Platform) -> None:
    api = make_api(timeout_seconds=0.2)
    await api.send_custom_text("oUSER1", "一")
    platform.fail(CUSTOM, delay=1.0)
    with pytest.raises(WeChatUnavailable) as caught:
        await api.send_custom_text("oUSER1", "二")
    assert caught.value.reason == "timeout"
    assert str(caught.value) == f"WeChat {CUSTOM}: no answer within 0.2 s"
    assert api.calls.get(CUSTOM, "timeout") == 1


async def test_an_unreachable_platform_raises_unavailable(make_api: Callable[..., WeChatApi]) -> None:
    api = make_api(api_base_url="http://127.0.0.1:1/")
    with pytest.raises(WeChatUnavailable) as caught:
        await api.send_custom_text("oUSER1", "一")
    assert caught.value.reason == "connect"
    assert caught.value.api == "cgi-bin/token"
    assert APP_SECRET not in str(caught.value)


async def test_an_http_error_status_raises_unavailable(make_api: Callable[..., WeChatApi]) -> None:
    with pytest.raises(WeChatUnavailable) as caught:
        await make_api().get_json("cgi-bin/no/such/api")
    assert caught.value.reason == "http_404"


async def test_calls_are_counted_by_api_and_outcome(make_api: Callable[..., WeChatApi], platform: Platform) -> None:
    api = make_api()
    await api.send_custom_text("oUSER1", "一")
    platform.fail(CUSTOM, 45047)
    with pytest.raises(WeChatApiError):
        await api.send_custom_text("oUSER1", "二")
    assert api.calls.snapshot() == {("cgi-bin/token", "0"): 1, (CUSTOM, "0"): 1, (CUSTOM, "45047"): 1}


async def test_calls_needing_a_token_without_a_token_store_are_unavailable(make_api: Callable[..., WeChatApi]) -> None:
    with pytest.raises(WeChatUnavailable) as caught:
        await make_api(with_tokens=False).get_menu()
    assert caught.value.reason == "token_store"


async def test_oauth_exchange_gives_the_openid_once_per_code(
    make_api: Callable[..., WeChatApi], platform: Platform
) -> None:
    api = make_api()
    code = platform.oauth_code("oUSER1", unionid="uUNION1")
    grant = await api.oauth_exchange(code)
    assert (grant.openid, grant.unionid, grant.scope) == ("oUSER1", "uUNION1", "snsapi_base")
    assert grant.snapshot_user is False
    with pytest.raises(WeChatApiError) as used:
        await api.oauth_exchange(code)
    assert used.value.errcode == 40163
    assert code not in str(used.value)
    with pytest.raises(WeChatApiError) as bad:
        await api.oauth_exchange("nonsense")
    assert bad.value.errcode == 40029
    assert platform.calls["cgi-bin/token"] == 0  # web login needs no access token


async def test_code2session_uses_the_miniprogram_app(make_api: Callable[..., WeChatApi], platform: Platform) -> None:
    platform.mp_codes["JSCODE1"] = "oMINI1"
    session = await make_api().code2session("JSCODE1")
    assert (session.openid, session.unionid) == ("oMINI1", None)
    assert session.session_key.startswith("SESSIONKEY")
    with pytest.raises(WeChatApiError) as caught:
        await make_api().code2session("JSCODE1")
    assert caught.value.errcode == 40029
    assert MP_APP_SECRET not in str(caught.value)


def test_redact_url_hides_tokens_secrets_and_codes() -> None:
    url = "https://api.weixin.qq.com/sns/oauth2/access_token?appid=wx1&secret=S&code=C&grant_type=authorization_code"
    assert redact_url(url) == (
        "https://api.weixin.qq.com/sns/oauth2/access_token?appid=wx1&secret=***&code=***&grant_type=authorization_code"
    )
    assert redact_url("/cgi-bin/menu/get?access_token=ABC") == "/cgi-bin/menu/get?access_token=***"
    assert redact_url("/sns/jscode2session?js_code=J&appid=wx2") == "/sns/jscode2session?js_code=***&appid=wx2"


def test_token_key_is_prefixed_and_per_app() -> None:
    assert token_key("wb", "wx123") == "wb:wechat:token:wx123"
