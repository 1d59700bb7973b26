"""The sandbox's control API and phone page: simulated users acting in WeChat reach ``/wechat``
signed and encrypted exactly as WeChat sends them; the reply comes back decrypted."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_sandbox_platform import Sandbox, echo, running_sandbox
from tornado.httpclient import AsyncHTTPClient
from tornado.netutil import bind_sockets
from wechatpy.crypto import WeChatCrypto
from wechatpy.messages import BaseMessage
from wechatpy.utils import WeChatSigner

from wechat_backend.sandbox import CallbackClient
from wechat_backend.sandbox.callback import CallbackError
from wechat_backend.services import Services


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as sb:
        yield sb


def sha1_sorted(*values: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*values)
    return signer.signature


# --------------------------------------------------------------------------- users


async def test_users_are_created_listed_and_read(sandbox: Sandbox) -> None:
    r = await sandbox.fetch("/sandbox/api/users", method="POST", body={"nickname": "张阿姨"})
    assert r.code == 201
    openid = json.loads(r.body)["openid"]
    assert openid.startswith("o") and len(openid) == 28
    user = await sandbox.get(f"/sandbox/api/users/{openid}")
    assert user["openid"] == openid and user["subscribed"] is False and user["tags"] == []
    assert user["nickname"] == "张阿姨" and user["unionid"] is None
    assert [u["openid"] for u in (await sandbox.get("/sandbox/api/users"))["users"]] == [openid]
    missing = await sandbox.fetch("/sandbox/api/users/o-nobody")
    assert missing.code == 404 and json.loads(missing.body)["error"] == "not_found"
    bad = await sandbox.fetch("/sandbox/api/users", method="POST", body="[1]")
    assert bad.code == 400 and json.loads(bad.body)["error"] == "bad_input"
    nothing = await sandbox.fetch("/sandbox/api/nothing")
    assert nothing.code == 404 and json.loads(nothing.body)["error"] == "not_found"


# --------------------------------------------------------------------------- acting as a user


async def test_follow_reaches_wechat_signed_and_encrypted(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    assert await sandbox.post(f"/sandbox/api/users/{openid}/follow") == {"reply": "事件：subscribe:"}

    (got,) = sandbox.received
    w = sandbox.settings.wechat
    q = got.query
    assert q["openid"] == openid and q["encrypt_type"] == "aes"
    assert q["signature"] == sha1_sorted(w.token, q["timestamp"], q["nonce"])
    assert abs(int(q["timestamp"]) - sandbox.clock.time()) <= 1
    encrypt = got.body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    assert q["msg_signature"] == sha1_sorted(w.token, q["timestamp"], q["nonce"], encrypt)
    assert "subscribe" not in got.body and f"<ToUserName><![CDATA[{sandbox.state.original_id}]]>" in got.body
    assert got.message.event == "subscribe" and got.message.source == openid
    assert got.message.target == sandbox.state.original_id
    assert (await sandbox.get(f"/sandbox/api/users/{openid}"))["subscribed"] is True

    # Following again changes nothing in WeChat: no event is sent.
    assert await sandbox.post(f"/sandbox/api/users/{openid}/follow") == {"reply": None}
    assert len(sandbox.received) == 1


async def test_scan_follows_with_the_scene_then_sends_scan(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    first = await sandbox.post(f"/sandbox/api/users/{openid}/scan", {"scene": "371502001"})
    assert first == {"reply": "事件：subscribe_scan:371502001"}
    followed = sandbox.received[0].message  # wechatpy reads EventKey "qrscene_…" as subscribe_scan
    assert followed.event == "subscribe_scan" and followed.scene_id == "371502001" and followed.ticket
    again = await sandbox.post(f"/sandbox/api/users/{openid}/scan", {"scene": "371502001"})
    assert again == {"reply": "事件：scan:371502001"}
    bad = await sandbox.fetch(f"/sandbox/api/users/{openid}/scan", method="POST", body={"scene": ""})
    assert bad.code == 400 and json.loads(bad.body)["field"] == "scene"


async def test_text_and_click_need_following_and_get_their_reply(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    refused = await sandbox.fetch(f"/sandbox/api/users/{openid}/text", method="POST", body={"content": "你好"})
    assert refused.code == 409 and json.loads(refused.body)["error"] == "not_subscribed"
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")

    assert await sandbox.post(f"/sandbox/api/users/{openid}/text", {"content": "你好"}) == {"reply": "收到：你好"}
    # Whatever the user types arrives intact, even what would end a CDATA section.
    sandbox.answer = lambda m: "好的"
    await sandbox.post(f"/sandbox/api/users/{openid}/text", {"content": "a ]]> <b>&amp;"})
    text = sandbox.received[-1].message
    assert text.type == "text" and text.content == "a ]]> <b>&amp;" and text.id
    sandbox.answer = echo
    assert await sandbox.post(f"/sandbox/api/users/{openid}/click", {"key": "CONTACT"}) == {
        "reply": "事件：click:CONTACT"
    }
    # Two identical clicks are two events: their CreateTime differs even on a stopped clock.
    await sandbox.post(f"/sandbox/api/users/{openid}/click", {"key": "CONTACT"})
    assert sandbox.received[-1].message.create_time != sandbox.received[-2].message.create_time

    assert await sandbox.post(f"/sandbox/api/users/{openid}/unfollow") == {"reply": "事件：unsubscribe:"}
    assert (await sandbox.get(f"/sandbox/api/users/{openid}"))["subscribed"] is False


async def test_replies_success_empty_and_news(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    sandbox.answer = lambda m: "success"
    assert await sandbox.post(f"/sandbox/api/users/{openid}/follow") == {"reply": None}
    sandbox.answer = lambda m: ""
    assert await sandbox.post(f"/sandbox/api/users/{openid}/text", {"content": "1"}) == {"reply": None}

    def news(message: BaseMessage) -> list[dict[str, str]]:
        return [{"title": "我的档案", "description": "查看", "image": "", "url": "http://127.0.0.1/r/home"}]

    sandbox.answer = news
    answer = await sandbox.post(f"/sandbox/api/users/{openid}/click", {"key": "HOME"})
    assert answer == {
        "reply": {
            "articles": [{"title": "我的档案", "description": "查看", "picurl": None, "url": "http://127.0.0.1/r/home"}]
        },
        "msgtype": "news",
    }


async def test_replies_wechat_would_refuse_are_reported(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    w = sandbox.settings.wechat
    sandbox.answer = lambda m: f"<xml><ToUserName>{openid}</ToUserName><MsgType>text</MsgType></xml>".encode()
    r = await sandbox.fetch(f"/sandbox/api/users/{openid}/follow", method="POST", body=b"")
    assert r.code == 502 and json.loads(r.body)["error"] == "bad_reply" and "未加密" in json.loads(r.body)["message"]

    def misaddressed(m: BaseMessage) -> bytes:
        inner = f"<xml><ToUserName>someone-else</ToUserName><FromUserName>{m.target}</FromUserName>"
        inner += "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content></xml>"
        return WeChatCrypto(w.token, w.encoding_aes_key, w.app_id).encrypt_message(inner, "1", "1").encode()

    sandbox.answer = misaddressed
    r = await sandbox.fetch(f"/sandbox/api/users/{openid}/text", method="POST", body={"content": "x"})
    assert r.code == 502 and "ToUserName" in json.loads(r.body)["message"]

    def forged(m: BaseMessage) -> bytes:
        return WeChatCrypto(w.token, "B" * 43, w.app_id).encrypt_message("<xml/>", "1", "1").encode()

    sandbox.answer = forged
    r = await sandbox.fetch(f"/sandbox/api/users/{openid}/text", method="POST", body={"content": "x"})
    assert r.code == 502 and json.loads(r.body)["error"] == "bad_reply"


async def test_plaintext_mode_sends_the_message_in_clear(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path, safe_mode=False) as sandbox:
        openid = await sandbox.new_user()
        await sandbox.post(f"/sandbox/api/users/{openid}/follow")
        assert await sandbox.post(f"/sandbox/api/users/{openid}/text", {"content": "明文"}) == {"reply": "收到：明文"}
        got = sandbox.received[-1]
        assert "encrypt_type" not in got.query and "msg_signature" not in got.query
        assert "<Content><![CDATA[明文]]></Content>" in got.body and "<Encrypt>" not in got.body


async def test_unreachable_or_slow_wechat_is_reported(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    w = sandbox.settings.wechat
    closed = bind_sockets(0, "127.0.0.1")
    port = closed[0].getsockname()[1]
    closed[0].close()

    def client(url: str, timeout: float = 5.0) -> CallbackClient:
        return CallbackClient(
            url,
            token=w.token,
            encoding_aes_key=w.encoding_aes_key,
            app_id=w.app_id,
            original_id=sandbox.state.original_id,
            now=sandbox.clock.time,
            timeout=timeout,
        )

    with pytest.raises(CallbackError) as down:
        await client(f"http://127.0.0.1:{port}/wechat").deliver(openid, {"MsgType": "text", "Content": "x"})
    assert down.value.code == "unavailable" and down.value.status == 502
    await sandbox.post("/sandbox/api/faults", {"api": "cgi-bin/token", "latency_ms": 1000, "count": 1})
    with pytest.raises(CallbackError) as slow:  # any slow endpoint will do: the token with latency
        await client(sandbox.base + "/sandbox/cgi-bin/token", timeout=0.2).deliver(openid, {"MsgType": "text"})
    assert slow.value.code == "timeout" and slow.value.status == 504


# --------------------------------------------------------------------------- codes, messages, menu, SMS


async def test_oauth_and_mp_codes_for_a_user(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    code = (await sandbox.post(f"/sandbox/api/users/{openid}/oauth-code"))["code"]
    w = sandbox.settings.wechat
    grant = await sandbox.get(
        "/sandbox/sns/oauth2/access_token",
        appid=w.app_id,
        secret=w.app_secret,
        code=code,
        grant_type="authorization_code",
    )
    assert grant["openid"] == openid and grant["scope"] == "snsapi_base"
    assert (await sandbox.post(f"/sandbox/api/users/{openid}/mp-code"))["code"] != code
    missing = await sandbox.fetch("/sandbox/api/users/o-nobody/oauth-code", method="POST", body=b"")
    assert missing.code == 404


async def test_messages_of_a_user_are_newest_first(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    token = await sandbox.token()
    for n in range(3):
        body = {"touser": openid, "msgtype": "text", "text": {"content": f"第{n}条"}}
        await sandbox.post("/sandbox/cgi-bin/message/custom/send", body, access_token=token)
    assert [m["text"] for m in await sandbox.get(f"/sandbox/api/users/{openid}/messages")] == [
        "第2条",
        "第1条",
        "第0条",
    ]


async def test_menu_is_empty_until_created(sandbox: Sandbox) -> None:
    assert await sandbox.get("/sandbox/api/menu") == {"menu": None, "conditionalmenu": []}
    openid = await sandbox.new_user()
    assert await sandbox.get(f"/sandbox/api/users/{openid}/menu") == {"menu": None}


async def test_sms_inbox_newest_first_per_phone(sandbox: Sandbox) -> None:
    for phone, text in [
        ("13800138000", "验证码 111111"),
        ("13900139000", "验证码 222222"),
        ("13800138000", "验证码 333333"),
    ]:
        r = await sandbox.fetch("/sandbox/api/sms", method="POST", body={"phone": phone, "text": text})
        assert r.code == 201
    mine = await sandbox.get("/sandbox/api/sms", phone="13800138000")
    assert [s["text"] for s in mine] == ["验证码 333333", "验证码 111111"]
    assert set(mine[0]) == {"phone", "text", "at"}
    assert len(await sandbox.get("/sandbox/api/sms")) == 3
    assert await sandbox.get("/sandbox/api/sms", phone="10000000000") == []
    bad = await sandbox.fetch("/sandbox/api/sms", method="POST", body={"phone": "138"})
    assert bad.code == 400 and json.loads(bad.body)["field"] == "text"


# --------------------------------------------------------------------------- the chat, kept across restarts

MENU = [{"name": "服务", "sub_button": [{"type": "click", "name": "使用帮助", "key": "HELP"}]}]


async def chat_of(sandbox: Sandbox, openid: str, after: int = 0) -> list[dict[str, Any]]:
    return (await sandbox.get(f"/sandbox/api/users/{openid}/chat", after=str(after)))["entries"]


async def test_the_chat_keeps_what_was_sent_done_replied_and_pushed_in_order(sandbox: Sandbox) -> None:
    token = await sandbox.token()
    await sandbox.post("/sandbox/cgi-bin/menu/create", {"button": MENU}, access_token=token)
    openid = await sandbox.new_user()
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    await sandbox.post(f"/sandbox/api/users/{openid}/text", {"content": "你好"})
    await sandbox.post(f"/sandbox/api/users/{openid}/click", {"key": "HELP"})
    body = {"touser": openid, "msgtype": "text", "text": {"content": "有人绑定了您的档案"}}
    await sandbox.post("/sandbox/cgi-bin/message/custom/send", body, access_token=token)
    chat = await chat_of(sandbox, openid)
    assert [(e["kind"], e.get("text") or e.get("reply")) for e in chat[:6]] == [
        ("note", "你关注了公众号"),
        ("reply", "事件：subscribe:"),
        ("sent", "你好"),
        ("reply", "收到：你好"),
        ("note", "点击菜单：使用帮助"),  # the item's name, as the phone showed it
        ("reply", "事件：click:HELP"),
    ]
    assert chat[6]["kind"] == "push" and chat[6]["message"]["text"] == "有人绑定了您的档案"
    assert [e["seq"] for e in chat] == sorted(e["seq"] for e in chat)
    assert await chat_of(sandbox, openid, chat[3]["seq"]) == chat[4:]
    bad = await sandbox.fetch(f"/sandbox/api/users/{openid}/chat?after=x")
    assert bad.code == 400
    # Refused actions leave no line: not following yet, nothing reaches the account.
    other = await sandbox.new_user("李叔")
    assert (await sandbox.fetch(f"/sandbox/api/users/{other}/text", method="POST", body={"content": "x"})).code == 409
    assert await chat_of(sandbox, other) == []


async def test_users_chats_pushes_sms_and_menus_survive_a_new_sandbox_on_the_same_data_dir(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path) as first:
        token = await first.token()
        await first.post("/sandbox/cgi-bin/menu/create", {"button": MENU}, access_token=token)
        tag = (await first.post("/sandbox/cgi-bin/tags/create", {"tag": {"name": "staff"}}, access_token=token))["tag"]
        openid = await first.new_user("张阿姨", unionid=True)
        await first.post(
            "/sandbox/cgi-bin/tags/members/batchtagging",
            {"openid_list": [openid], "tagid": tag["id"]},
            access_token=token,
        )
        await first.post(f"/sandbox/api/users/{openid}/follow")
        await first.post(f"/sandbox/api/users/{openid}/text", {"content": "档案"})
        body = {"touser": openid, "template_id": "T1", "url": first.base + "/r/home", "data": {"k": {"value": "v"}}}
        pushed = await first.post("/sandbox/cgi-bin/message/template/send", body, access_token=token)
        await first.post("/sandbox/api/sms", {"phone": "13800138000", "text": "验证码123456"})
        user, chat = await first.get(f"/sandbox/api/users/{openid}"), await chat_of(first, openid)
        messages, sms = await first.get(f"/sandbox/api/users/{openid}/messages"), await first.get("/sandbox/api/sms")
        first.state.store.flush()  # what the debounce would write half a second later
    kept = tmp_path / "data" / "sandbox-state.json"
    assert json.loads(kept.read_text(encoding="utf-8"))["format"] == 1
    assert not list(kept.parent.glob("*.tmp"))  # written aside, then moved into place

    async with running_sandbox(tmp_path) as second:  # a restart: a new process, the same data dir
        assert await second.get(f"/sandbox/api/users/{openid}") == user
        assert await chat_of(second, openid) == chat
        assert await second.get(f"/sandbox/api/users/{openid}/messages") == messages
        assert await second.get("/sandbox/api/sms") == sms
        assert (await second.get(f"/sandbox/api/users/{openid}/menu"))["menu"]["button"][0]["name"] == "服务"
        # Ids go on from where they were: no msgid, tag id or chat line is handed out twice.
        await second.post(f"/sandbox/api/users/{openid}/text", {"content": "随访"})
        newer = await chat_of(second, openid, chat[-1]["seq"])
        assert [e["kind"] for e in newer] == ["sent", "reply"]
        token = await second.token()
        again = await second.post("/sandbox/cgi-bin/message/template/send", body, access_token=token)
        assert again["msgid"] > pushed["msgid"]
        made = await second.post("/sandbox/cgi-bin/tags/create", {"tag": {"name": "other"}}, access_token=token)
        assert made["tag"]["id"] > tag["id"]


async def test_an_unreadable_state_file_is_set_aside_and_the_sandbox_starts_empty(tmp_path: Path) -> None:
    kept = tmp_path / "data" / "sandbox-state.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{not json", encoding="utf-8")
    async with running_sandbox(tmp_path) as sb:
        assert (await sb.get("/sandbox/api/users"))["users"] == []
        await sb.new_user()
        await asyncio.sleep(0.8)  # the debounced write
    assert (kept.parent / "sandbox-state.json.bad").read_text(encoding="utf-8") == "{not json"
    assert len(json.loads(kept.read_text(encoding="utf-8"))["users"]) == 1


# --------------------------------------------------------------------------- the phone page


async def test_phone_page_and_its_assets(sandbox: Sandbox) -> None:
    r = await sandbox.fetch("/sandbox/")
    html = r.body.decode()
    assert r.code == 200 and 'lang="zh-CN"' in html and 'data-base="/sandbox/"' in html
    for test_id in ("user-select", "user-create", "follow", "unfollow", "chat-input", "menu", "webview-frame"):
        assert f'data-test="{test_id}"' in html
    # The SMS inbox can be pulled down over an open page, from the web view's own bar.
    bar = html.split('class="webview__bar"')[1].split("</iframe>")[0]
    assert 'data-test="webview-sms"' in bar and 'data-test="sms-sheet"' in bar
    assert "<script>" not in html and " style=" not in html  # the CSP allows neither
    for asset in ("sandbox/phone.js", "sandbox/phone.css"):
        assert asset in html
        path = html.split(f"/static/{asset}")[1].split('"')[0]
        got = await sandbox.fetch(f"/static/{asset}{path}")
        assert got.code == 200 and len(got.body) > 1000
    redirect = await sandbox.fetch("/sandbox", follow_redirects=False)
    assert redirect.code in (301, 302) and redirect.headers["Location"] == "/sandbox/"


# --------------------------------------------------------------------------- through the real app


async def test_the_real_backend_works_through_the_mounted_sandbox(live: tuple[str, Services]) -> None:
    base, services = live

    async def call(path: str, body: Any = None, **kw: Any) -> Any:
        method = "GET" if body is None else "POST"
        data = None if body is None else json.dumps(body)
        r = await AsyncHTTPClient().fetch(base + path, method=method, body=data, raise_error=False, **kw)
        return r

    openid = json.loads((await call("/sandbox/api/users", {"nickname": "张阿姨"})).body)["openid"]
    # WeChat -> our /wechat (safe mode, signed with the configured token) -> a text reply back.
    followed = await call(f"/sandbox/api/users/{openid}/follow", {})
    assert followed.code == 200, followed.body
    reply = json.loads(followed.body)["reply"]
    assert isinstance(reply, str) and reply

    # Our API client -> the sandbox's platform API (token, then menu/create).
    await services.wechat.create_menu([{"type": "click", "name": "帮助", "key": "HELP"}])
    menu = json.loads((await call("/sandbox/api/menu")).body)["menu"]
    assert menu["button"] == [{"type": "click", "name": "帮助", "key": "HELP", "sub_button": []}]

    # OAuth: /oauth/start -> the sandbox's authorize page (silent inside the phone) -> /oauth/callback.
    start = await call("/oauth/start?next=/healthz", follow_redirects=False)
    assert start.code == 302 and start.headers["Location"].startswith(base + "/sandbox/connect/oauth2/authorize?")
    consent = await call(
        urllib.parse.urlsplit(start.headers["Location"])._replace(scheme="", netloc="").geturl(),
        follow_redirects=False,
        headers={"Cookie": f"sandbox_openid={openid}"},
    )
    assert consent.code == 302 and consent.headers["Location"].startswith(base + "/oauth/callback?code=")
    login_cookie = start.headers["Set-Cookie"].split(";", 1)[0]  # wb_oauth, from the same browser
    back = await call(
        consent.headers["Location"].removeprefix(base), follow_redirects=False, headers={"Cookie": login_cookie}
    )
    assert back.code == 302 and back.headers["Location"] == "/healthz" and "Set-Cookie" in back.headers
