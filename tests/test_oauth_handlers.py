"""The login flow over HTTP, through the real app on a real socket: a page without a session goes to
WeChat and lands back on itself; the session cookie's flags; Bearer calls; 401 JSON for the API."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import make_settings
from local_server import serving
from platform_double import Platform, wechat_overrides
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.web import url

from handlers.base import BaseHandler
from wechat_backend.app import make_app
from wechat_backend.clock import FixedClock
from wechat_backend.config import Settings
from wechat_backend.services import Services
from wechat_backend.wechat.oauth import DEFAULT_NEXT


async def fetch(address: str, **kw: object) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(address, raise_error=False, follow_redirects=False, **kw)


@pytest.fixture(params=["http", "https"])
def public_scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_url: str, platform: Platform, public_scheme: str) -> Settings:
    public = "https://wx.example.cn" if public_scheme == "https" else "http://wx.example.cn"
    return make_settings(tmp_path, db_url, redis_url, server={"public_base_url": public}, **wechat_overrides(platform))


class WhoAmIHandler(BaseHandler):
    """Test-only: a logged-in route under /api/ and as a page, to exercise BaseHandler.prepare."""

    async def get(self) -> None:
        self.write({"identity_id": self.current_user.identity_id})

    async def post(self) -> None:
        self.write({"identity_id": self.current_user.identity_id})


@pytest.fixture
async def app_url(services: Services) -> AsyncIterator[str]:
    """The real application plus the test-only routes."""
    app = make_app(services)
    app.add_handlers(r".*", [url(r"/api/v1/test/whoami", WhoAmIHandler), url(r"/test/whoami", WhoAmIHandler)])
    async with serving(app) as base:
        yield base


def cookie_name(settings: Settings) -> str:
    return "__Host-wb_session" if settings.server.public_base_url.startswith("https://") else "wb_session"


def login_cookie(start: HTTPResponse) -> str:
    """The ``wb_oauth=…`` pair ``/oauth/start`` set, as the browser sends it back."""
    jar = SimpleCookie()
    for header in start.headers.get_list("Set-Cookie"):
        jar.load(header)
    return f"wb_oauth={jar['wb_oauth'].value}"


async def start_login(base: str, next_path: str = "/r/home") -> tuple[str, str]:
    """``/oauth/start``: the state it sent to WeChat, and the login cookie it set."""
    start = await fetch(f"{base}/oauth/start?{urlencode({'next': next_path})}")
    assert start.code == 302
    return parse_qs(urlsplit(start.headers["Location"]).query)["state"][0], login_cookie(start)


async def log_in(
    base: str, platform: Platform, openid: str, next_path: str = "/r/home", cookie: str = ""
) -> HTTPResponse:
    """Start, let "WeChat" authorize, and call back from the same browser. Returns the callback's response."""
    state, started = await start_login(base, next_path)
    code = platform.oauth_code(openid)
    headers = {"Cookie": "; ".join(c for c in (cookie, started) if c)}
    return await fetch(f"{base}/oauth/callback?{urlencode({'code': code, 'state': state})}", headers=headers)


def session_from(response: HTTPResponse, settings: Settings) -> str:
    jar = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return jar[cookie_name(settings)].value


async def test_a_page_without_a_session_logs_in_through_wechat_and_lands_back(
    base_url: str, platform: Platform, settings: Settings
) -> None:
    page = await fetch(base_url + "/r/home")
    assert page.code == 302
    assert page.headers["Location"] == "/oauth/start?next=%2Fr%2Fhome"

    start = await fetch(base_url + page.headers["Location"])
    assert start.code == 302
    authorize = start.headers["Location"]
    assert authorize.startswith(platform.url + "connect/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["scope"] == ["snsapi_base"]
    assert query["redirect_uri"] == [settings.server.public_base_url + "/oauth/callback"]

    # WeChat sends the browser back to redirect_uri with a code and the state.
    code = platform.oauth_code("oRESIDENT1")
    callback = await fetch(
        f"{base_url}/oauth/callback?{urlencode({'code': code, 'state': query['state'][0]})}",
        headers={"Cookie": login_cookie(start)},
    )
    assert callback.code == 302
    assert callback.headers["Location"] == "/r/home"
    assert callback.headers["Cache-Control"] == "no-store"

    home = await fetch(
        base_url + "/r/home", headers={"Cookie": f"{cookie_name(settings)}={session_from(callback, settings)}"}
    )
    assert home.code == 200
    body = home.body.decode()
    assert "您已通过微信登录" in body and "绑定健康档案" in body
    assert 'lang="zh-CN"' in body
    assert "oRESIDENT1" not in body


async def test_the_session_cookie_carries_only_the_id_with_strict_flags(
    base_url: str, platform: Platform, settings: Settings, public_scheme: str
) -> None:
    callback = await log_in(base_url, platform, "oRESIDENT1")
    (header,) = [h for h in callback.headers.get_list("Set-Cookie") if h.startswith(cookie_name(settings) + "=")]
    name_value, *attributes = [part.strip() for part in header.split(";")]
    flags = {a.split("=")[0].lower(): (a.split("=", 1)[1] if "=" in a else True) for a in attributes}
    assert re.fullmatch(rf"{re.escape(cookie_name(settings))}=[0-9a-f]{{32}}", name_value)
    assert flags["httponly"] is True
    assert flags["samesite"] == "Lax"
    assert flags["path"] == "/"
    assert "domain" not in flags
    if public_scheme == "https":
        assert name_value.startswith("__Host-wb_session=")
        assert flags["secure"] is True
    else:
        assert name_value.startswith("wb_session=")
        assert "secure" not in flags


async def test_the_page_keeps_its_query_through_the_login(app_url: str, platform: Platform, settings: Settings) -> None:
    page = await fetch(app_url + "/test/whoami?tab=2&x=%E4%B8%AD")
    assert page.code == 302
    next_path = parse_qs(urlsplit(page.headers["Location"]).query)["next"][0]
    assert next_path == "/test/whoami?tab=2&x=%E4%B8%AD"
    callback = await log_in(app_url, platform, "oRESIDENT1", next_path)
    assert callback.headers["Location"] == next_path


async def test_a_foreign_next_lands_on_the_home_page(base_url: str, platform: Platform) -> None:
    callback = await log_in(base_url, platform, "oRESIDENT1", "https://evil.example/phish")
    assert callback.headers["Location"] == DEFAULT_NEXT


async def test_the_home_route_is_the_default_landing_page(services: Services) -> None:
    assert make_app(services).reverse_url("resident_home") == DEFAULT_NEXT


async def test_a_replayed_callback_shows_a_chinese_page_without_the_code(base_url: str, platform: Platform) -> None:
    state, started = await start_login(base_url)
    code = platform.oauth_code("oRESIDENT1")
    callback = f"{base_url}/oauth/callback?{urlencode({'code': code, 'state': state})}"
    assert (await fetch(callback, headers={"Cookie": started})).code == 302
    # The same browser, its login cookie kept (a WebView that ignores the clearing): refused.
    again = await fetch(callback, headers={"Cookie": started})
    assert again.code == 401
    body = again.body.decode()
    assert "请从公众号菜单重新进入" in body
    assert code not in body and state not in body and "Traceback" not in body
    assert not again.headers.get_list("Set-Cookie") or all(
        not h.startswith(("wb_session=", "__Host-wb_session=")) for h in again.headers.get_list("Set-Cookie")
    )


async def test_a_new_login_replaces_the_old_session(app_url: str, platform: Platform, settings: Settings) -> None:
    first = session_from(await log_in(app_url, platform, "oRESIDENT1"), settings)
    cookie = f"{cookie_name(settings)}={first}"
    second = session_from(await log_in(app_url, platform, "oRESIDENT1", cookie=cookie), settings)
    assert second != first
    assert (await fetch(app_url + "/api/v1/test/whoami", headers={"Cookie": cookie})).code == 401


async def test_an_idle_session_sends_the_page_back_through_login(
    base_url: str, platform: Platform, settings: Settings, clock: FixedClock
) -> None:
    cookie = f"{cookie_name(settings)}={session_from(await log_in(base_url, platform, 'oRESIDENT1'), settings)}"
    assert (await fetch(base_url + "/r/home", headers={"Cookie": cookie})).code == 200
    clock.advance(minutes=31)
    page = await fetch(base_url + "/r/home", headers={"Cookie": cookie})
    assert page.code == 302
    assert page.headers["Location"] == "/oauth/start?next=%2Fr%2Fhome"


async def test_the_api_answers_401_json_without_a_session(app_url: str) -> None:
    r = await fetch(app_url + "/api/v1/test/whoami")
    assert r.code == 401
    assert json.loads(r.body) == {"error": "not_logged_in", "message": "请从公众号菜单重新进入"}
    forged = await fetch(app_url + "/api/v1/test/whoami", headers={"Authorization": "Bearer " + "0" * 32})
    assert forged.code == 401


async def test_a_bearer_session_works_for_the_api_and_skips_xsrf(
    app_url: str, platform: Platform, settings: Settings, services: Services
) -> None:
    session_id = session_from(await log_in(app_url, platform, "oRESIDENT1"), settings)
    identity = await services.identities.by_openid("oa", "oRESIDENT1")
    assert identity is not None
    bearer = {"Authorization": f"Bearer {session_id}"}
    got = await fetch(app_url + "/api/v1/test/whoami", headers=bearer)
    assert (got.code, json.loads(got.body)) == (200, {"identity_id": identity.id})
    posted = await fetch(app_url + "/api/v1/test/whoami", method="POST", body="{}", headers=bearer)
    assert (posted.code, json.loads(posted.body)) == (200, {"identity_id": identity.id})


async def test_a_cookie_session_still_needs_the_xsrf_token_to_post(
    app_url: str, platform: Platform, settings: Settings
) -> None:
    cookie = f"{cookie_name(settings)}={session_from(await log_in(app_url, platform, 'oRESIDENT1'), settings)}"
    refused = await fetch(app_url + "/api/v1/test/whoami", method="POST", body="{}", headers={"Cookie": cookie})
    assert refused.code == 403
    xsrf = "2|abcdef01|" + "0" * 32 + "|1700000000"
    allowed = await fetch(
        app_url + "/api/v1/test/whoami",
        method="POST",
        body="{}",
        headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert allowed.code == 200


async def test_the_login_leaves_no_code_state_or_session_id_in_the_logs(
    base_url: str, platform: Platform, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state, started = await start_login(base_url)
    code = platform.oauth_code("oRESIDENT1")
    callback_url = f"{base_url}/oauth/callback?{urlencode({'code': code, 'state': state})}"
    callback = await fetch(callback_url, headers={"Cookie": started})
    session_id = session_from(callback, settings)
    await fetch(callback_url, headers={"Cookie": started})  # replay: logged as 401
    assert "/oauth/callback" in caplog.text
    for secret in (code, state, session_id, settings.wechat.app_secret):
        assert secret not in caplog.text
