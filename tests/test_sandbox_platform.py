"""The sandbox's simulated api.weixin.qq.com / open.weixin.qq.com, over HTTP on a real socket.

``running_sandbox`` (also used by ``test_sandbox_control.py``) serves the sandbox routes plus a
stand-in ``/wechat`` that checks signatures and decrypts with wechatpy, as our backend must.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.messages import BaseMessage
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

from wechat_backend.clock import FixedClock
from wechat_backend.config import Settings, load_settings
from wechat_backend.resources import resource_dir
from wechat_backend.sandbox import SandboxState, sandbox_routes

Answer = Callable[[BaseMessage], Any]  # the stand-in /wechat's reply: text, articles, "", raw bytes


def echo(message: BaseMessage) -> str:
    if message.type == "text":
        return f"收到：{message.content}"
    return f"事件：{message.event}:{getattr(message, 'key', None) or getattr(message, 'scene_id', None) or ''}"


@dataclass
class Received:
    query: dict[str, str]
    body: str
    message: BaseMessage


@dataclass
class Sandbox:
    base: str
    settings: Settings
    state: SandboxState
    clock: FixedClock
    received: list[Received] = field(default_factory=list)
    answer: Answer = echo

    async def fetch(self, path: str, *, method: str = "GET", body: Any = None, **kw: Any) -> HTTPResponse:
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        if method == "POST" and body is None:
            body = b""
        return await AsyncHTTPClient().fetch(self.base + path, method=method, body=body, raise_error=False, **kw)

    async def get(self, path: str, **query: str) -> Any:
        r = await self.fetch(path + ("?" + urllib.parse.urlencode(query) if query else ""))
        return json.loads(r.body)

    async def post(self, path: str, body: Any = None, **query: str) -> Any:
        r = await self.fetch(path + ("?" + urllib.parse.urlencode(query) if query else ""), method="POST", body=body)
        return json.loads(r.body)

    async def token(self) -> str:
        w = self.settings.wechat
        answer = await self.get(
            "/sandbox/cgi-bin/token", grant_type="client_credential", appid=w.app_id, secret=w.app_secret
        )
        return answer["access_token"]

    async def new_user(self, nickname: str = "张阿姨", **extra: Any) -> str:
        return (await self.post("/sandbox/api/users", {"nickname": nickname, **extra}))["openid"]


class StandInWechat(RequestHandler):
    """Our ``/wechat`` as wechatpy would write it: verify, decrypt, answer, encrypt."""

    def initialize(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def check_xsrf_cookie(self) -> None:
        pass

    def post(self) -> None:
        w = self.sandbox.settings.wechat
        q = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        check_signature(w.token, q["signature"], q["timestamp"], q["nonce"])
        crypto = WeChatCrypto(w.token, w.encoding_aes_key, w.app_id)
        body = self.request.body.decode()
        safe = q.get("encrypt_type") == "aes"
        xml = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"]) if safe else body
        message = parse_message(xml)
        self.sandbox.received.append(Received(q, body, message))
        reply = self.sandbox.answer(message)
        if isinstance(reply, bytes):  # exactly these bytes, unsealed: for replies WeChat must refuse
            self.finish(reply)
            return
        if reply in ("", "success"):
            self.finish(reply)
            return
        rendered = create_reply(reply, message).render()
        self.finish(crypto.encrypt_message(rendered, q["nonce"], q["timestamp"]) if safe else rendered)


@asynccontextmanager
async def running_sandbox(
    tmp_path: Path, *, safe_mode: bool = True, callback_url: str | None = None, **sections: dict[str, Any]
) -> AsyncIterator[Sandbox]:
    sockets = bind_sockets(0, "127.0.0.1")
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    overrides: dict[str, dict[str, Any]] = {
        "server": {"mode": "demo", "data_dir": str(tmp_path / "data"), "public_base_url": base},
        "wechat": {"api_base_url": base + "/sandbox/", "open_base_url": base + "/sandbox/"},
        "sandbox": {"enabled": True},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    settings = load_settings(environ={}, overrides=overrides)
    clock = FixedClock(dt.datetime.fromtimestamp(int(time.time()), dt.UTC))
    state = SandboxState.from_settings(settings, clock=clock)
    sandbox = Sandbox(base, settings, state, clock)
    app = Application(
        [
            *sandbox_routes(settings, state=state, safe_mode=safe_mode, callback_url=callback_url),
            (r"/wechat", StandInWechat, {"sandbox": sandbox}),
        ],
        template_path=str(resource_dir("templates")),
        static_path=str(resource_dir("static")),
        cookie_secret="test",
    )
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield sandbox
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as sb:
        yield sb


# --------------------------------------------------------------------------- access tokens


async def test_token_is_issued_for_the_right_secret_only(sandbox: Sandbox) -> None:
    w = sandbox.settings.wechat
    ok = await sandbox.get(
        "/sandbox/cgi-bin/token", grant_type="client_credential", appid=w.app_id, secret=w.app_secret
    )
    assert ok["expires_in"] == 7200 and len(ok["access_token"]) >= 64
    wrong_secret = await sandbox.get(
        "/sandbox/cgi-bin/token", grant_type="client_credential", appid=w.app_id, secret="x"
    )
    assert wrong_secret["errcode"] == 40125 and "rid:" in wrong_secret["errmsg"]
    wrong_app = await sandbox.get("/sandbox/cgi-bin/token", grant_type="client_credential", appid="wxnope", secret="x")
    assert wrong_app["errcode"] == 40013
    wrong_grant = await sandbox.get("/sandbox/cgi-bin/token", grant_type="password", appid=w.app_id, secret="x")
    assert wrong_grant["errcode"] == 40002


async def test_calls_need_a_valid_current_token(sandbox: Sandbox) -> None:
    assert (await sandbox.get("/sandbox/cgi-bin/tags/get"))["errcode"] == 41001
    assert (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token="forged"))["errcode"] == 40001
    first = await sandbox.token()
    assert "tags" in await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=first)
    second = await sandbox.token()
    # The previous token keeps working for 5 minutes after a new one is fetched, then is not "latest".
    assert "tags" in await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=first)
    sandbox.clock.advance(seconds=301)
    assert (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=first))["errcode"] == 40001
    assert "tags" in await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=second)
    sandbox.clock.advance(seconds=7200)
    assert (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=second))["errcode"] == 42001


async def test_stable_token_is_reused_until_forced_and_isolated_from_token(sandbox: Sandbox) -> None:
    w = sandbox.settings.wechat
    body = {"grant_type": "client_credential", "appid": w.app_id, "secret": w.app_secret}
    one = await sandbox.post("/sandbox/cgi-bin/stable_token", body)
    sandbox.clock.advance(seconds=60)
    again = await sandbox.post("/sandbox/cgi-bin/stable_token", body)
    assert again["access_token"] == one["access_token"] and again["expires_in"] == 7140
    await sandbox.token()  # a cgi-bin/token fetch does not touch the stable token
    assert "tags" in await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=one["access_token"])
    forced = await sandbox.post("/sandbox/cgi-bin/stable_token", {**body, "force_refresh": True})
    assert forced["access_token"] != one["access_token"]
    assert (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=one["access_token"]))["errcode"] == 40001
    bad = await sandbox.post("/sandbox/cgi-bin/stable_token", {**body, "secret": "nope"})
    assert bad["errcode"] == 40125


async def test_unknown_platform_path_says_so(sandbox: Sandbox) -> None:
    r = await sandbox.fetch("/sandbox/cgi-bin/no/such/api")
    assert r.code == 404 and json.loads(r.body)["errcode"] == 48001


# --------------------------------------------------------------------------- pushes


def template(openid: str, **extra: Any) -> dict[str, Any]:
    return {
        "touser": openid,
        "template_id": "tpl-followup",
        "url": "http://127.0.0.1/r/home",
        "data": {"thing1": {"value": "高血压随访"}, "time2": {"value": "2026-11-25"}},
        **extra,
    }


async def test_template_messages_are_recorded_newest_first(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    token = await sandbox.token()
    send = "/sandbox/cgi-bin/message/template/send"
    assert (await sandbox.post(send, template(openid), access_token=token))["errcode"] == 43004  # not following
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    first = await sandbox.post(send, template(openid), access_token=token)
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and first["msgid"]
    await sandbox.post(send, template(openid, template_id="tpl-exam"), access_token=token)
    assert (await sandbox.post(send, template("o-unknown"), access_token=token))["errcode"] == 40003
    assert (await sandbox.post(send, template(openid, template_id=""), access_token=token))["errcode"] == 40037
    assert (await sandbox.post(send, template(openid), access_token="bad"))["errcode"] == 40001

    messages = await sandbox.get(f"/sandbox/api/users/{openid}/messages")
    assert [m["template_id"] for m in messages] == ["tpl-exam", "tpl-followup"]
    m = messages[1]
    assert m["kind"] == "template" and m["url"] == "http://127.0.0.1/r/home" and m["text"] is None
    assert m["data"] == {"thing1": {"value": "高血压随访"}, "time2": {"value": "2026-11-25"}}
    assert m["at"].endswith("Z")


async def test_template_with_the_same_client_msg_id_is_sent_once(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    token = await sandbox.token()
    send = "/sandbox/cgi-bin/message/template/send"
    a = await sandbox.post(send, template(openid, client_msg_id="n-1"), access_token=token)
    b = await sandbox.post(send, template(openid, client_msg_id="n-1"), access_token=token)
    assert a["msgid"] == b["msgid"]
    assert len(await sandbox.get(f"/sandbox/api/users/{openid}/messages")) == 1


async def test_custom_messages_need_a_recent_interaction(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    token = await sandbox.token()
    send = "/sandbox/cgi-bin/message/custom/send"
    body = {"touser": openid, "msgtype": "text", "text": {"content": "您的档案已更新"}}
    assert (await sandbox.post(send, body, access_token=token))["errcode"] == 45015
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    assert await sandbox.post(send, body, access_token=token) == {"errcode": 0, "errmsg": "ok"}
    assert (await sandbox.post(send, {**body, "msgtype": "fax"}, access_token=token))["errcode"] == 40008
    sandbox.clock.advance(hours=49)
    assert (await sandbox.post(send, body, access_token=await sandbox.token()))["errcode"] == 45015
    (m,) = await sandbox.get(f"/sandbox/api/users/{openid}/messages")
    assert m["kind"] == "custom" and m["msgtype"] == "text" and m["text"] == "您的档案已更新"


# --------------------------------------------------------------------------- faults


async def test_fault_fails_the_next_count_calls_then_clears(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    await sandbox.post(f"/sandbox/api/users/{openid}/follow")
    token = await sandbox.token()
    send = "/sandbox/cgi-bin/message/template/send"
    set_fault = await sandbox.fetch(
        "/sandbox/api/faults",
        method="POST",
        body={"api": "cgi-bin/message/template/send", "errcode": 45009, "count": 2},
    )
    assert set_fault.code == 201
    codes = [(await sandbox.post(send, template(openid), access_token=token))["errcode"] for _ in range(3)]
    assert codes == [45009, 45009, 0]
    assert (await sandbox.get("/sandbox/api/faults")) == {"faults": []}
    assert len(await sandbox.get(f"/sandbox/api/users/{openid}/messages")) == 1


async def test_fault_with_count_zero_lasts_until_deleted(sandbox: Sandbox) -> None:
    await sandbox.post("/sandbox/api/faults", {"api": "/cgi-bin/tags/get", "errcode": -1, "count": 0})
    token = await sandbox.token()
    for _ in range(3):
        assert (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=token))["errcode"] == -1
    r = await sandbox.fetch("/sandbox/api/faults", method="DELETE")
    assert json.loads(r.body) == {"faults": []}
    assert "tags" in await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=token)


async def test_fault_latency_delays_the_answer(sandbox: Sandbox) -> None:
    await sandbox.post("/sandbox/api/faults", {"api": "cgi-bin/token", "latency_ms": 300, "count": 1})
    started = time.monotonic()
    assert await sandbox.token()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await sandbox.token()
    assert time.monotonic() - started < 0.3


async def test_fault_for_an_unknown_api_or_without_effect_is_refused(sandbox: Sandbox) -> None:
    r = await sandbox.fetch("/sandbox/api/faults", method="POST", body={"api": "cgi-bin/nope", "errcode": -1})
    assert r.code == 400 and json.loads(r.body)["field"] == "api"
    r = await sandbox.fetch("/sandbox/api/faults", method="POST", body={"api": "cgi-bin/token"})
    assert r.code == 400


# --------------------------------------------------------------------------- OAuth and mini-program login


def authorize_path(sandbox: Sandbox, scope: str = "snsapi_base", redirect: str | None = None) -> str:
    query = {
        "appid": sandbox.settings.wechat.app_id,
        "redirect_uri": redirect or sandbox.base + "/oauth/callback?x=1",
        "response_type": "code",
        "scope": scope,
        "state": "abc123",
    }
    return "/sandbox/connect/oauth2/authorize?" + urllib.parse.urlencode(query) + "#wechat_redirect"


def redirected(r: HTTPResponse) -> dict[str, str]:
    assert r.code == 302, r.body
    location = urllib.parse.urlsplit(r.headers["Location"])
    return dict(urllib.parse.parse_qsl(location.query))


async def exchange(sandbox: Sandbox, code: str) -> dict[str, Any]:
    w = sandbox.settings.wechat
    return await sandbox.get(
        "/sandbox/sns/oauth2/access_token",
        appid=w.app_id,
        secret=w.app_secret,
        code=code,
        grant_type="authorization_code",
    )


async def test_authorize_page_picks_a_user_and_the_code_works_once(sandbox: Sandbox) -> None:
    page = await sandbox.fetch(authorize_path(sandbox))
    assert page.code == 200
    html = page.body.decode()
    assert 'lang="zh-CN"' in html and "允许" in html and 'name="viewport"' in html

    consent = await sandbox.fetch(
        authorize_path(sandbox),
        method="POST",
        body=urllib.parse.urlencode({"openid": "", "nickname": "李大爷", "action": "allow"}),
        follow_redirects=False,
    )
    back = redirected(consent)
    assert back["state"] == "abc123" and back["x"] == "1" and back["code"]
    assert consent.headers["Location"].startswith(sandbox.base + "/oauth/callback?x=1&")

    grant = await exchange(sandbox, back["code"])
    assert grant["scope"] == "snsapi_base" and grant["expires_in"] == 7200 and grant["access_token"]
    assert (await sandbox.get(f"/sandbox/api/users/{grant['openid']}"))["nickname"] == "李大爷"
    assert (await exchange(sandbox, back["code"]))["errcode"] == 40163
    assert (await exchange(sandbox, "made-up"))["errcode"] == 40029


async def test_authorize_inside_the_phone_is_silent_for_snsapi_base(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    cookie = {"Cookie": f"sandbox_openid={openid}"}
    r = await sandbox.fetch(authorize_path(sandbox), headers=cookie, follow_redirects=False)
    assert (await exchange(sandbox, redirected(r)["code"]))["openid"] == openid
    # snsapi_userinfo still asks, with this user preselected.
    r = await sandbox.fetch(authorize_path(sandbox, "snsapi_userinfo"), headers=cookie, follow_redirects=False)
    assert r.code == 200 and "获得你的昵称" in r.body.decode()


async def test_authorize_deny_returns_without_a_code(sandbox: Sandbox) -> None:
    r = await sandbox.fetch(
        authorize_path(sandbox, "snsapi_userinfo"),
        method="POST",
        body="action=deny",
        follow_redirects=False,
    )
    assert redirected(r) == {"x": "1", "state": "abc123"}


async def test_authorize_refuses_another_domain_or_scope(sandbox: Sandbox) -> None:
    r = await sandbox.fetch(authorize_path(sandbox, redirect="https://evil.example.com/cb"))
    assert r.code == 400 and "10003" in r.body.decode()
    r = await sandbox.fetch(authorize_path(sandbox, scope="snsapi_login"))
    assert r.code == 400 and "10005" in r.body.decode()


async def test_oauth_code_expires_after_five_minutes(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user()
    code = (await sandbox.post(f"/sandbox/api/users/{openid}/oauth-code"))["code"]
    sandbox.clock.advance(seconds=301)
    assert (await exchange(sandbox, code))["errcode"] == 40029


async def test_userinfo_scope_gives_unionid_and_profile(sandbox: Sandbox) -> None:
    openid = await sandbox.new_user("王女士", unionid="oUnion123")
    code = (await sandbox.post(f"/sandbox/api/users/{openid}/oauth-code", {"scope": "snsapi_userinfo"}))["code"]
    grant = await exchange(sandbox, code)
    assert grant["unionid"] == "oUnion123" and grant["scope"] == "snsapi_userinfo"
    info = await sandbox.get("/sandbox/sns/userinfo", access_token=grant["access_token"], openid=openid)
    assert info["nickname"] == "王女士" and info["unionid"] == "oUnion123"


async def test_jscode2session_gives_the_mini_program_openid(sandbox: Sandbox) -> None:
    mp = sandbox.settings.miniprogram
    with_union = await sandbox.new_user(unionid=True)
    without = await sandbox.new_user()

    async def login(openid: str) -> dict[str, Any]:
        code = (await sandbox.post(f"/sandbox/api/users/{openid}/mp-code"))["code"]
        return await sandbox.get(
            "/sandbox/sns/jscode2session",
            appid=mp.app_id,
            secret=mp.app_secret,
            js_code=code,
            grant_type="authorization_code",
        )

    user = await sandbox.get(f"/sandbox/api/users/{with_union}")
    session = await login(with_union)
    assert session["openid"] == user["mp_openid"] != with_union
    assert session["unionid"] == user["unionid"] and session["session_key"]
    assert "unionid" not in await login(without)
    code = (await sandbox.post(f"/sandbox/api/users/{without}/mp-code"))["code"]
    w = sandbox.settings.wechat  # the official account's appid cannot redeem a wx.login code
    wrong = await sandbox.get("/sandbox/sns/jscode2session", appid=w.app_id, secret=w.app_secret, js_code=code)
    assert wrong["errcode"] == 40013
    again = {"appid": mp.app_id, "secret": mp.app_secret, "js_code": code}
    assert "openid" in await sandbox.get("/sandbox/sns/jscode2session", **again)
    assert (await sandbox.get("/sandbox/sns/jscode2session", **again))["errcode"] == 40163


# --------------------------------------------------------------------------- menus, tags, users

MENU = [
    {"type": "view", "name": "我的档案", "url": "http://127.0.0.1/oauth/start?next=/r/home"},
    {"name": "服务", "sub_button": [{"type": "click", "name": "联系我们", "key": "CONTACT"}]},
]
STAFF_MENU = [{"type": "view", "name": "工作台", "url": "http://127.0.0.1/staff"}]


async def test_menus_round_trip_like_menu_get(sandbox: Sandbox) -> None:
    token = await sandbox.token()
    assert (await sandbox.get("/sandbox/cgi-bin/menu/get", access_token=token))["errcode"] == 46003
    no_default = {"button": STAFF_MENU, "matchrule": {"tag_id": "100"}}
    assert (await sandbox.post("/sandbox/cgi-bin/menu/addconditional", no_default, access_token=token))[
        "errcode"
    ] == 65303
    assert (await sandbox.post("/sandbox/cgi-bin/menu/create", {"button": MENU}, access_token=token))["errcode"] == 0
    tag = (await sandbox.post("/sandbox/cgi-bin/tags/create", {"tag": {"name": "staff"}}, access_token=token))["tag"]
    rule = {"button": STAFF_MENU, "matchrule": {"tag_id": str(tag["id"])}}
    added = await sandbox.post("/sandbox/cgi-bin/menu/addconditional", rule, access_token=token)
    assert isinstance(added["menuid"], str)

    got = await sandbox.get("/sandbox/cgi-bin/menu/get", access_token=token)
    buttons = got["menu"]["button"]
    assert buttons[0] == {**MENU[0], "sub_button": []}
    assert buttons[1]["sub_button"] == [{**MENU[1]["sub_button"][0], "sub_button": []}]
    (conditional,) = got["conditionalmenu"]
    assert conditional["matchrule"] == {"tag_id": str(tag["id"])} and conditional["menuid"] == int(added["menuid"])
    control = await sandbox.get("/sandbox/api/menu")
    assert control["menu"] == got["menu"] and control["conditionalmenu"] == got["conditionalmenu"]

    resident, staff = await sandbox.new_user(), await sandbox.new_user("刘医生")
    tagging = {"openid_list": [staff], "tagid": tag["id"]}
    assert (await sandbox.post("/sandbox/cgi-bin/tags/members/batchtagging", tagging, access_token=token))[
        "errcode"
    ] == 0
    assert (await sandbox.get(f"/sandbox/api/users/{resident}/menu"))["menu"]["button"][0]["name"] == "我的档案"
    assert (await sandbox.get(f"/sandbox/api/users/{staff}/menu"))["menu"]["button"][0]["name"] == "工作台"
    matched = await sandbox.post("/sandbox/cgi-bin/menu/trymatch", {"user_id": staff}, access_token=token)
    assert matched["button"][0]["name"] == "工作台"


@pytest.mark.parametrize(
    ("buttons", "errcode"),
    [
        ([{"type": "click", "name": "一", "key": "A"}] * 4, 40016),
        ([{"type": "zap", "name": "一", "key": "A"}], 40017),
        ([{"type": "click", "name": "这是一个特别长的菜单名", "key": "A"}], 40018),
        ([{"type": "click", "name": "一"}], 40019),
        ([{"name": "组", "sub_button": [{"type": "view", "name": "子"}]}], 40027),
        ([{"name": "组", "sub_button": [{"type": "click", "name": "子", "key": "K"}] * 6}], 40023),
    ],
)
async def test_menu_create_checks_the_buttons(sandbox: Sandbox, buttons: list[Any], errcode: int) -> None:
    token = await sandbox.token()
    answer = await sandbox.post("/sandbox/cgi-bin/menu/create", {"button": buttons}, access_token=token)
    assert answer["errcode"] == errcode
    assert (await sandbox.get("/sandbox/api/menu"))["menu"] is None


async def test_tags_and_user_info(sandbox: Sandbox) -> None:
    token = await sandbox.token()
    openid = await sandbox.new_user()
    tag = (await sandbox.post("/sandbox/cgi-bin/tags/create", {"tag": {"name": "staff"}}, access_token=token))["tag"]
    assert tag["id"] >= 100 and tag["name"] == "staff"
    dup = await sandbox.post("/sandbox/cgi-bin/tags/create", {"tag": {"name": "staff"}}, access_token=token)
    assert dup["errcode"] == 45157
    bad = await sandbox.post(
        "/sandbox/cgi-bin/tags/members/batchtagging", {"openid_list": [openid], "tagid": 999}, access_token=token
    )
    assert bad["errcode"] == 45159
    await sandbox.post(
        "/sandbox/cgi-bin/tags/members/batchtagging", {"openid_list": [openid], "tagid": tag["id"]}, access_token=token
    )
    tags = (await sandbox.get("/sandbox/cgi-bin/tags/get", access_token=token))["tags"]
    assert {"id": tag["id"], "name": "staff", "count": 1} in tags
    ids = await sandbox.post("/sandbox/cgi-bin/tags/getidlist", {"openid": openid}, access_token=token)
    assert ids == {"tagid_list": [tag["id"]]}
    members = await sandbox.post("/sandbox/cgi-bin/user/tag/get", {"tagid": tag["id"]}, access_token=token)
    assert members["count"] == 1 and members["data"]["openid"] == [openid]
    user = await sandbox.get(f"/sandbox/api/users/{openid}")
    assert user["tags"] == ["staff"] and user["subscribed"] is False

    assert await sandbox.get("/sandbox/cgi-bin/user/info", access_token=token, openid=openid) == {
        "subscribe": 0,
        "openid": openid,
    }
    await sandbox.post(f"/sandbox/api/users/{openid}/scan", {"scene": "371502001"})
    info = await sandbox.get("/sandbox/cgi-bin/user/info", access_token=token, openid=openid)
    assert info["subscribe"] == 1 and info["subscribe_scene"] == "ADD_SCENE_QR_CODE"
    assert info["qr_scene"] == 371502001 and info["tagid_list"] == [tag["id"]]


async def test_the_platform_is_usable_through_its_base_url_alone(sandbox: Sandbox) -> None:
    """The backend only knows ``api_base_url``: joining a real path onto it reaches the sandbox."""
    w = sandbox.settings.wechat
    url = urllib.parse.urljoin(w.api_base_url, "cgi-bin/token")
    query = urllib.parse.urlencode({"grant_type": "client_credential", "appid": w.app_id, "secret": w.app_secret})
    r = await AsyncHTTPClient().fetch(f"{url}?{query}")
    assert json.loads(r.body)["expires_in"] == 7200
    assert r.headers["Content-Type"].startswith("application/json")


async def test_concurrent_token_fetches_each_get_an_answer(sandbox: Sandbox) -> None:
    tokens = await asyncio.gather(*(sandbox.token() for _ in range(5)))
    assert len(set(tokens)) == 5


async def test_a_created_qr_code_is_what_the_scan_carries(sandbox: Sandbox) -> None:
    token = await sandbox.token()
    poster = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "371502001"}}}
    qr = await sandbox.post("/sandbox/cgi-bin/qrcode/create", poster, access_token=token)
    assert qr["ticket"] and qr["url"].startswith("http://weixin.qq.com/q/") and "expire_seconds" not in qr
    temporary = {"expire_seconds": 600, "action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 7}}}
    assert (await sandbox.post("/sandbox/cgi-bin/qrcode/create", temporary, access_token=token))[
        "expire_seconds"
    ] == 600
    bad = {"action_name": "QR_SCENE", "action_info": {"scene": {}}}
    assert (await sandbox.post("/sandbox/cgi-bin/qrcode/create", bad, access_token=token))["errcode"] == 40097
    openid = await sandbox.new_user()
    await sandbox.post(f"/sandbox/api/users/{openid}/scan", {"scene": "371502001"})
    assert sandbox.received[-1].message.ticket == qr["ticket"]
