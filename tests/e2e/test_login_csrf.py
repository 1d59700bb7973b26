"""Login CSRF and session handling, through the sandbox as a browser meets them.

The attack: a man starts a login in his own browser, has WeChat authorize his own account so the
code lands unused, and sends a woman the link ``/oauth/callback?code=C&state=S``. Her browser must
not be logged in as him (had it been, she would bind her archive to his WeChat, and he would be its
owner). And: a WebView that drops every cookie is asked to come in again, never looped through
WeChat; binding gives a new session id; logging out ends the session on the server.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from binding.conftest import ELDER, people, person
from sqlalchemy import select

from wechat_backend.db.models import Binding

from .conftest import Live
from .test_bind_pages import Visitor, hidden_fields

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture


@pytest.fixture
async def browsers(people: Live) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20) for _ in range(3)]
    yield clients
    for client in clients:
        await client.aclose()


def session_cookie(client: httpx.AsyncClient) -> str | None:
    return next((c.value for c in client.cookies.jar if c.name == "wb_session"), None)


async def allow_as(v: Visitor, authorize: httpx.Response, openid: str) -> httpx.Response:
    """On WeChat's authorize page, allow as ``openid``; follows the way back to our site."""
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', authorize.text)[1])
    return await v.go(action, method="POST", data={"openid": openid, "action": "allow"})


async def bound_identities(services: object) -> set[int]:
    async with services.sessions() as s:  # type: ignore[attr-defined]
        return set((await s.scalars(select(Binding.identity_id))).all())


async def test_an_attackers_callback_link_logs_the_victim_in_as_herself_only(
    people: Live, browsers: list[httpx.AsyncClient]
) -> None:
    base, services = people
    attacker = Visitor(base, browsers[0])
    attacker.openid = (await attacker.control("POST", "users", {"nickname": "冒充者"}))["openid"]
    await attacker.control("POST", f"users/{attacker.openid}/follow", {})

    # He starts a login in his own browser, and WeChat authorizes his account elsewhere: an unused code.
    start = await attacker.client.get(base + "/oauth/start", params={"next": "/r/home"})
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    code = (await attacker.control("POST", f"users/{attacker.openid}/oauth-code", {}))["code"]
    link = f"/oauth/callback?code={code}&state={state}"

    # She opens his link: she is sent to log in herself, not logged in as him.
    victim = Visitor(base, browsers[1])
    victim.openid = (await victim.control("POST", "users", {"nickname": "刘阿姨"}))["openid"]
    await victim.control("POST", f"users/{victim.openid}/follow", {})
    authorize = await victim.go(link)
    assert [h[1:] for h in victim.hops] == [
        ("/oauth/callback", 302),
        ("/oauth/start", 302),
        ("/sandbox/connect/oauth2/authorize", 200),
    ]
    assert session_cookie(victim.client) is None
    assert "公众号申请获得以下权限" in authorize.text

    # She allows as herself, agrees and binds her own archive: it is bound to her WeChat alone.
    home = await allow_as(victim, authorize, victim.openid)
    assert home.status_code == 200 and "您已通过微信登录" in home.text
    assert services.web_sessions is not None
    session = await services.web_sessions.load(session_cookie(victim.client) or "")
    her = await services.identities.by_openid("oa", victim.openid)
    him = await services.identities.by_openid("oa", attacker.openid)
    assert session is not None and her is not None and him is not None
    assert session.identity_id == her.id
    bound = await victim.bind(ELDER)
    assert "绑定成功" in bound.text
    assert await bound_identities(services) == {her.id}

    # His code was never spent by her visit: it still logs him in, in his own browser.
    mine = await attacker.client.get(base + link)
    assert mine.status_code == 302 and mine.headers["Location"] == "/r/home"
    assert session_cookie(attacker.client) is not None
    own = await services.web_sessions.load(session_cookie(attacker.client) or "")
    assert own is not None and own.identity_id == him.id


async def test_a_callback_with_another_browsers_state_spends_nothing(
    people: Live, browsers: list[httpx.AsyncClient]
) -> None:
    """Her own login cookie does not match his state either: the code stays unused."""
    base, _ = people
    attacker, victim = Visitor(base, browsers[0]), Visitor(base, browsers[1])
    openid = (await attacker.control("POST", "users", {"nickname": "冒充者"}))["openid"]
    his = await attacker.client.get(base + "/oauth/start")
    state = parse_qs(urlsplit(his.headers["Location"]).query)["state"][0]
    code = (await attacker.control("POST", f"users/{openid}/oauth-code", {}))["code"]

    await victim.client.get(base + "/oauth/start")  # a login of her own under way: her cookie
    r = await victim.client.get(base + "/oauth/callback", params={"code": code, "state": state})
    assert r.status_code == 302 and r.headers["Location"] == "/oauth/start?again=1"
    assert session_cookie(victim.client) is None

    used = await attacker.client.get(base + "/oauth/callback", params={"code": code, "state": state})
    assert used.status_code == 302 and session_cookie(attacker.client) is not None


async def test_a_webview_that_drops_cookies_is_asked_to_come_in_again_not_looped(
    people: Live, browsers: list[httpx.AsyncClient]
) -> None:
    base, _ = people
    v = Visitor(base, browsers[2])
    v.openid = (await v.control("POST", "users", {"nickname": "张大爷"}))["openid"]
    url = base + "/r/home"
    authorizations = 0
    for _ in range(12):
        v.client.cookies.clear()  # this WebView keeps no cookie from one response to the next
        r = await v.client.get(url)
        if r.status_code in (301, 302, 303):
            url = base + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"]
            continue
        if "公众号申请获得以下权限" not in r.text:
            break
        authorizations += 1
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', r.text)[1])
        v.client.cookies.clear()
        back = await v.client.post(base + action, data={"openid": v.openid, "action": "allow"})
        url = back.headers["Location"]
    assert authorizations == 2  # the first try and one restart, no more
    assert r.status_code == 401 and "请从公众号菜单重新进入" in r.text


async def test_binding_gives_the_browser_a_new_session_id(people: Live, browsers: list[httpx.AsyncClient]) -> None:
    base, services = people
    v = Visitor(base, browsers[0])
    await v.follow_and_log_in("刘阿姨")
    before = session_cookie(v.client)
    assert before is not None
    await v.bind(ELDER)
    after = session_cookie(v.client)
    assert after is not None and after != before
    assert services.web_sessions is not None
    assert await services.web_sessions.load(before) is None  # whatever was planted or seen is dead
    renewed = await services.web_sessions.load(after)
    assert renewed is not None
    home = await v.go("/r/home")
    assert home.status_code == 200 and person(ELDER)["name"][0] + "**" in home.text


async def test_logging_out_ends_the_session_on_the_server(people: Live, browsers: list[httpx.AsyncClient]) -> None:
    base, services = people
    v = Visitor(base, browsers[0])
    home = await v.follow_and_log_in("刘阿姨")
    session_id = session_cookie(v.client)
    assert session_id is not None and 'data-test="logout"' in home.text
    out = await v.go("/r/logout", method="POST", data=hidden_fields(home.text, "/r/logout"))
    assert out.status_code == 200 and "您已退出登录" in out.text
    assert services.web_sessions is not None
    assert await services.web_sessions.load(session_id) is None
    assert session_cookie(v.client) is None
    # The old id, sent again by hand, opens nothing.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as replay:
        page = await replay.get(base + "/r/home", headers={"Cookie": f"wb_session={session_id}"})
    assert page.status_code == 302 and urlsplit(page.headers["Location"]).path == "/oauth/start"


async def test_logging_out_needs_the_xsrf_token_with_a_cookie(people: Live, browsers: list[httpx.AsyncClient]) -> None:
    base, services = people
    v = Visitor(base, browsers[0])
    await v.follow_and_log_in("刘阿姨")
    session_id = session_cookie(v.client)
    forged = await v.client.post(base + "/r/logout", data={})  # a cross-site form has no token
    assert forged.status_code == 403
    assert services.web_sessions is not None and await services.web_sessions.load(session_id or "") is not None


async def test_the_api_logout_ends_a_bearer_session(people: Live, browsers: list[httpx.AsyncClient]) -> None:
    base, services = people
    client = browsers[0]
    openid = (await client.post(base + "/sandbox/api/users", json={"nickname": "小程序用户"})).json()["openid"]
    code = (await client.post(f"{base}/sandbox/api/users/{openid}/mp-code", json={})).json()["code"]
    token = (await client.post(base + "/api/v1/mp/login", json={"code": code})).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get(base + "/api/v1/archives", headers=bearer)).status_code == 200
    out = await client.post(base + "/api/v1/logout", headers=bearer)
    assert out.status_code == 204 and out.content == b""
    assert (await client.get(base + "/api/v1/archives", headers=bearer)).status_code == 401
    # Logged out already: still 204.
    assert (await client.post(base + "/api/v1/logout", headers=bearer)).status_code == 204
    assert services.web_sessions is not None and await services.web_sessions.load(token) is None
