"""The official account end to end, over HTTP against the real app with the sandbox mounted in it:
a WeChat user follows, gets the welcome with our link, opens it, logs in through WeChat's web
authorization and lands on the signed-in page; the menu the CLI pushes shows up and answers."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from wechat_backend.wechat import replies
from wechat_backend.wechat.menu import menus, push_menu
from wechat_backend.wechat.replies import Contact

from .conftest import Browser, Live, as_menu_get, click_keys

CHINESE = re.compile(r"[\u4e00-\u9fff]")


async def control(base: str, path: str, body: dict[str, Any] | None = None, *, status: int = 200) -> Any:
    """One call to the sandbox's control API (``/sandbox/api/…``)."""
    async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
        if body is None:
            r = await client.get(base + "/sandbox/api/" + path)
        else:
            r = await client.post(base + "/sandbox/api/" + path, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def new_follower(base: str, nickname: str = "张阿姨") -> tuple[str, str]:
    """A simulated user who follows the account: ``(openid, welcome reply)``."""
    openid = (await control(base, "users", {"nickname": nickname}, status=201))["openid"]
    followed = await control(base, f"users/{openid}/follow", {})
    assert set(followed) == {"reply"}, followed  # a text reply
    return openid, followed["reply"]


async def test_follow_then_the_welcome_link_logs_in_through_wechat(live: Live, web: Browser) -> None:
    base, services = live
    openid, welcome = await new_follower(base)

    # The welcome: Chinese text with a link to our own site.
    home = base + "/r/home"
    assert welcome == replies.welcome(home)
    links = re.findall(r"https?://[^\s<>\"'，。]+", welcome)
    assert links == [home]
    identity = await services.identities.by_openid("oa", openid)
    assert identity is not None and identity.subscribed

    # Open it in a browser with no cookies: to WeChat's authorize page (the consent step) …
    consent = await web.go(links[0])
    start, authorize = web.hops[1][1], web.hops[2][1]
    assert [(m, urlsplit(u).path, s) for m, u, s in web.hops] == [
        ("GET", "/r/home", 302),
        ("GET", "/oauth/start", 302),
        ("GET", "/sandbox/connect/oauth2/authorize", 200),
    ]
    assert parse_qs(urlsplit(start).query) == {"next": ["/r/home"]}
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["appid"] == [services.settings.wechat.app_id] and asked["response_type"] == ["code"]
    assert asked["redirect_uri"] == [base + "/oauth/callback"] and asked["state"][0]
    assert asked["scope"] == ["snsapi_base"] and urlsplit(authorize).fragment == "wechat_redirect"
    page = consent.text
    assert "公众号申请获得以下权限" in page and f'value="{openid}"' in page
    assert not any(c.name == "wb_session" for c in web.client.cookies.jar)

    # … where the person allows, as themselves: back to /oauth/callback, a session, then the page.
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page)[1])
    signed_in = await web.go(base + action, method="POST", data={"openid": openid, "action": "allow"})
    hops = [(m, urlsplit(u).path, s) for m, u, s in web.hops[3:]]
    assert hops == [
        ("POST", "/sandbox/connect/oauth2/authorize", 302),
        ("GET", "/oauth/callback", 302),
        ("GET", "/r/home", 200),
    ]
    callback = parse_qs(urlsplit(web.hops[4][1]).query)
    assert callback["state"] == asked["state"] and callback["code"][0]
    assert signed_in.status_code == 200 and "您已通过微信登录" in signed_in.text
    assert "欢迎使用居民电子健康档案查询" in signed_in.text

    # The session cookie is HttpOnly and belongs to the identity the follow created.
    (cookie,) = [c for c in web.client.cookies.jar if c.name == "wb_session"]
    assert cookie.path == "/" and cookie.has_nonstandard_attr("HttpOnly")
    assert services.web_sessions is not None
    session = await services.web_sessions.load(cookie.value)
    assert session is not None and session.kind == "resident" and session.identity_id == identity.id

    # Signed in: the page opens at once; the code was used up and cannot log in again.
    again = await web.go(home)
    assert again.status_code == 200 and "您已通过微信登录" in again.text and web.hops[-1][1] == home
    # Another browser with the same link is not logged in: it is sent to start a login of its own.
    async with httpx.AsyncClient(trust_env=False) as stranger:
        replay = await stranger.get(web.hops[4][1])
    assert replay.status_code == 302 and replay.headers["Location"] == "/oauth/start?again=1"
    assert "wb_session" not in replay.headers.get("set-cookie", "")


async def test_pushed_menu_is_shown_and_every_click_answers_in_chinese(live: Live) -> None:
    base, services = live
    settings = services.settings

    # Pushed as `wechat-backend menu push` does: our platform client → the sandbox's cgi-bin/menu/….
    pushed = await push_menu(settings, services.wechat)
    default, staff = menus(settings)
    assert pushed.buttons == default and pushed.staff_buttons == staff
    assert default[0] == {"type": "view", "name": "我的档案", "url": base + "/r/home"}
    assert click_keys(default) and set(click_keys(default)) <= set(replies.MENU_KEYS)

    # The sandbox shows exactly that: everyone's menu, and the staff's for the staff tag.
    shown = await control(base, "menu")
    assert shown == {
        "menu": {"button": as_menu_get(default), "menuid": shown["menu"]["menuid"]},
        "conditionalmenu": [
            {
                "button": as_menu_get(staff),
                "menuid": int(pushed.conditional_menu_id),
                "matchrule": {"tag_id": str(pushed.staff_tag_id)},
            }
        ],
    }

    # A resident (no staff tag) who follows sees everyone's menu …
    openid, _ = await new_follower(base)
    assert (await control(base, f"users/{openid}/menu"))["menu"]["button"] == as_menu_get(default)

    # … and every CLICK in it, and in the staff's, answers with its own Chinese text.
    home = base + "/r/home"
    for key in dict.fromkeys(click_keys(default) + click_keys(staff)):
        answer = await control(base, f"users/{openid}/click", {"key": key})
        assert set(answer) == {"reply"}, answer  # text, not news or anything else
        text = answer["reply"]
        assert isinstance(text, str) and text.strip() and CHINESE.search(text), (key, text)
        assert len(text.encode()) <= 2048  # WeChat's limit for a passive text reply
        assert text == replies.answer(key, home, Contact()) and text != replies.fallback(Contact())

    # Opening a VIEW item is an event our account takes silently (``success``).
    assert await control(base, f"users/{openid}/view", {"url": home}) == {"reply": None}
