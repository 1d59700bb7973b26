"""OAuthService: the snsapi_base authorize URL, a login tied to the browser that started it (the
state in its signed cookie), single-use state, only local next paths, and a login that upserts the
identity and opens a fresh session. Runs on every database backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import make_settings
from platform_double import APP_ID, Platform, wechat_overrides

from wechat_backend.clock import FixedClock
from wechat_backend.config import Settings
from wechat_backend.errors import NotLoggedIn, RateLimited, Unavailable
from wechat_backend.services import Services
from wechat_backend.wechat.oauth import (
    CALLBACK_WINDOWS,
    DEFAULT_NEXT,
    STATE_TTL_SECONDS,
    LoginStart,
    OAuthService,
    safe_next,
)

CALLBACK = "/oauth/callback"
IP = "203.0.113.7"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_url: str, platform: Platform) -> Settings:
    return make_settings(
        tmp_path, db_url, redis_url, server={"public_base_url": "https://wx.example.cn"}, **wechat_overrides(platform)
    )


@pytest.fixture
def oauth(services: Services) -> OAuthService:
    assert services.oauth is not None
    return services.oauth


def state_of(authorize_url: str) -> str:
    return parse_qs(urlsplit(authorize_url).query)["state"][0]


def started(oauth: OAuthService, next_path: str | None = "/r/home") -> LoginStart:
    """A login started in "this browser": what its cookie holds, as the callback finds it."""
    login, url = oauth.start(next_path, callback_path=CALLBACK)
    assert state_of(url) == login.state
    found = oauth.matching(login.cookie_value(), login.state)
    assert found == login
    return login


async def test_start_redirects_to_the_snsapi_base_authorize_url_and_stores_nothing(
    oauth: OAuthService, platform: Platform, services: Services
) -> None:
    assert services.redis is not None
    before = await services.redis.client.dbsize()
    login, url = oauth.start("/r/home?tab=2", callback_path=CALLBACK)
    assert url.startswith(platform.url + "connect/oauth2/authorize?appid=")
    assert url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "appid": [APP_ID],
        "redirect_uri": ["https://wx.example.cn/oauth/callback"],
        "response_type": ["code"],
        "scope": ["snsapi_base"],
        "state": [login.state],
    }
    assert "redirect_uri=https%3A%2F%2Fwx.example.cn%2Foauth%2Fcallback" in url
    assert re.fullmatch(r"[0-9a-f]{32}", login.state)  # never next, never base64
    assert json.loads(login.cookie_value()) == {"s": login.state, "n": "/r/home?tab=2", "t": login.issued_at}
    # Anonymous starts cost the server nothing: a flood cannot fill Redis.
    assert await services.redis.client.dbsize() == before


async def test_every_start_gets_its_own_state(oauth: OAuthService) -> None:
    states = {oauth.start("/r/home", callback_path=CALLBACK)[0].state for _ in range(10)}
    assert len(states) == 10


async def test_finish_upserts_the_identity_and_opens_a_session(
    oauth: OAuthService, platform: Platform, services: Services
) -> None:
    login = await oauth.finish(
        platform.oauth_code("oRESIDENT1", unionid="uUNION1"), started(oauth, "/r/home?tab=2"), client_ip=IP
    )
    assert (login.identity.channel, login.identity.openid, login.identity.unionid) == ("oa", "oRESIDENT1", "uUNION1")
    assert login.next_path == "/r/home?tab=2"
    assert services.web_sessions is not None
    session = await services.web_sessions.load(login.session_id)
    assert session is not None
    assert (session.identity_id, session.kind) == (login.identity.id, "resident")
    assert await services.identities.by_openid("oa", "oRESIDENT1") == login.identity


async def test_a_second_login_reuses_the_identity_and_replaces_the_session(
    oauth: OAuthService, platform: Platform, services: Services
) -> None:
    first = await oauth.finish(platform.oauth_code("oRESIDENT1"), started(oauth), client_ip=IP)
    second = await oauth.finish(
        platform.oauth_code("oRESIDENT1"), started(oauth), client_ip=IP, previous_session_id=first.session_id
    )
    assert second.identity.id == first.identity.id
    assert second.session_id != first.session_id
    assert services.web_sessions is not None
    assert await services.web_sessions.load(first.session_id) is None
    assert await services.web_sessions.load(second.session_id) is not None


async def test_a_state_works_once(oauth: OAuthService, platform: Platform) -> None:
    login = started(oauth)
    await oauth.finish(platform.oauth_code("oRESIDENT1"), login, client_ip=IP)
    with pytest.raises(NotLoggedIn):
        await oauth.finish(platform.oauth_code("oRESIDENT1"), login, client_ip=IP)
    assert platform.calls["sns/oauth2/access_token"] == 1


async def test_a_callback_matches_only_the_cookie_of_the_browser_that_started_it(
    oauth: OAuthService, clock: FixedClock
) -> None:
    mine = started(oauth)
    theirs, _ = oauth.start("/r/home", callback_path=CALLBACK)
    # The attacker's state arriving in a browser whose cookie holds another state, or none.
    assert oauth.matching(mine.cookie_value(), theirs.state) is None
    assert oauth.matching(None, theirs.state) is None
    assert oauth.matching(b"", theirs.state) is None
    assert oauth.matching(b"not json", mine.state) is None
    assert oauth.matching(json.dumps({"s": mine.state}), mine.state) is None
    # An old login is not finished either.
    clock.advance(seconds=STATE_TTL_SECONDS + 1)
    assert oauth.matching(mine.cookie_value(), mine.state) is None


def test_a_cookie_with_a_foreign_next_goes_home() -> None:
    cookie = json.dumps({"s": "a" * 32, "n": "https://evil.example/", "t": 0})
    login = LoginStart.from_cookie(cookie)
    assert login is not None and login.next_path == DEFAULT_NEXT


@pytest.mark.parametrize("state", ["", "abc-def", "A" * 32, "a" * 33, "../x", "a" * 129])
def test_a_malformed_state_matches_nothing(oauth: OAuthService, state: str) -> None:
    login = started(oauth)
    forged = json.dumps({"s": state, "n": "/r/home", "t": login.issued_at})
    assert oauth.matching(forged, state) is None


async def test_a_used_or_bad_code_asks_to_come_in_again(oauth: OAuthService, platform: Platform) -> None:
    code = platform.oauth_code("oRESIDENT1")
    await oauth.finish(code, started(oauth), client_ip=IP)
    with pytest.raises(NotLoggedIn):  # 40163
        await oauth.finish(code, started(oauth), client_ip=IP)
    with pytest.raises(NotLoggedIn):  # 40029
        await oauth.finish("nonsense", started(oauth), client_ip=IP)


async def test_a_platform_failure_is_unavailable(oauth: OAuthService, platform: Platform) -> None:
    platform.fail("sns/oauth2/access_token", -1, "system error")
    with pytest.raises(Unavailable):
        await oauth.finish(platform.oauth_code("oRESIDENT1"), started(oauth), client_ip=IP)


async def test_callbacks_are_limited_per_address_generously(oauth: OAuthService, platform: Platform) -> None:
    per_minute = CALLBACK_WINDOWS[0][1]
    assert per_minute >= 100  # a carrier's NAT puts many residents behind one address
    for _ in range(per_minute):
        await oauth.finish(platform.oauth_code("oRESIDENT1"), started(oauth), client_ip=IP)
    with pytest.raises(RateLimited):
        await oauth.finish(platform.oauth_code("oRESIDENT1"), started(oauth), client_ip=IP)
    # Another address is not affected.
    await oauth.finish(platform.oauth_code("oRESIDENT2"), started(oauth), client_ip="198.51.100.9")


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "r/home",
        "https://evil.example/r/home",
        "//evil.example/r/home",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/r/home\r\nSet-Cookie: x=1",
        "/oauth/start?next=/r/home",
        "/oauth/callback?code=x",
        "/" + "a" * 512,
    ],
)
def test_safe_next_refuses_anything_but_a_local_path(path: str | None) -> None:
    assert safe_next(path) == DEFAULT_NEXT


@pytest.mark.parametrize("path", ["/r/home", "/r/archives/a1b2?tab=followups", "/r/home#top", "/staff/"])
def test_safe_next_keeps_local_paths(path: str) -> None:
    assert safe_next(path) == path
