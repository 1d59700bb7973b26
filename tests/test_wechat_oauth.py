"""OAuthService: the snsapi_base authorize URL, single-use state, only local next paths, and a login
that upserts the identity and opens a fresh session. Runs on every database backend."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import make_settings
from platform_double import APP_ID, Platform, wechat_overrides

from wechat_backend.app import Services
from wechat_backend.config import Settings
from wechat_backend.errors import NotLoggedIn, Unavailable
from wechat_backend.wechat.oauth import DEFAULT_NEXT, OAuthService, safe_next, state_key

CALLBACK = "/oauth/callback"


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


async def test_start_redirects_to_the_snsapi_base_authorize_url(
    oauth: OAuthService, platform: Platform, services: Services
) -> None:
    url = await oauth.start("/r/home?tab=2", callback_path=CALLBACK)
    assert url.startswith(platform.url + "connect/oauth2/authorize?appid=")
    assert url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "appid": [APP_ID],
        "redirect_uri": ["https://wx.example.cn/oauth/callback"],
        "response_type": ["code"],
        "scope": ["snsapi_base"],
        "state": [state_of(url)],
    }
    assert "redirect_uri=https%3A%2F%2Fwx.example.cn%2Foauth%2Fcallback" in url
    state = state_of(url)
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)
    assert services.redis is not None
    key = state_key(services.settings.redis.key_prefix, state)
    assert (await services.redis.client.get(key)) == b"/r/home?tab=2"
    assert 0 < await services.redis.client.ttl(key) <= 600


async def test_every_start_gets_its_own_state(oauth: OAuthService) -> None:
    states = {state_of(await oauth.start("/r/home", callback_path=CALLBACK)) for _ in range(10)}
    assert len(states) == 10


async def test_finish_upserts_the_identity_and_opens_a_session(
    oauth: OAuthService, platform: Platform, services: Services
) -> None:
    state = state_of(await oauth.start("/r/home?tab=2", callback_path=CALLBACK))
    login = await oauth.finish(platform.oauth_code("oRESIDENT1", unionid="uUNION1"), state)
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
    first = await oauth.finish(
        platform.oauth_code("oRESIDENT1"), state_of(await oauth.start("/r/home", callback_path=CALLBACK))
    )
    second = await oauth.finish(
        platform.oauth_code("oRESIDENT1"),
        state_of(await oauth.start("/r/home", callback_path=CALLBACK)),
        previous_session_id=first.session_id,
    )
    assert second.identity.id == first.identity.id
    assert second.session_id != first.session_id
    assert services.web_sessions is not None
    assert await services.web_sessions.load(first.session_id) is None
    assert await services.web_sessions.load(second.session_id) is not None


async def test_a_state_works_once(oauth: OAuthService, platform: Platform) -> None:
    state = state_of(await oauth.start("/r/home", callback_path=CALLBACK))
    await oauth.finish(platform.oauth_code("oRESIDENT1"), state)
    with pytest.raises(NotLoggedIn):
        await oauth.finish(platform.oauth_code("oRESIDENT1"), state)


@pytest.mark.parametrize("state", ["", "0" * 32, "abc-def", "a" * 129, "../x"])
async def test_an_unknown_or_malformed_state_is_refused_before_any_exchange(
    oauth: OAuthService, platform: Platform, state: str
) -> None:
    code = platform.oauth_code("oRESIDENT1")
    with pytest.raises(NotLoggedIn):
        await oauth.finish(code, state)
    assert platform.calls["sns/oauth2/access_token"] == 0


async def test_a_used_or_bad_code_asks_to_come_in_again(oauth: OAuthService, platform: Platform) -> None:
    code = platform.oauth_code("oRESIDENT1")
    await oauth.finish(code, state_of(await oauth.start("/r/home", callback_path=CALLBACK)))
    with pytest.raises(NotLoggedIn):  # 40163
        await oauth.finish(code, state_of(await oauth.start("/r/home", callback_path=CALLBACK)))
    with pytest.raises(NotLoggedIn):  # 40029
        await oauth.finish("nonsense", state_of(await oauth.start("/r/home", callback_path=CALLBACK)))


async def test_a_platform_failure_is_unavailable(oauth: OAuthService, platform: Platform) -> None:
    platform.fail("sns/oauth2/access_token", -1, "system error")
    with pytest.raises(Unavailable):
        await oauth.finish(
            platform.oauth_code("oRESIDENT1"), state_of(await oauth.start("/r/home", callback_path=CALLBACK))
        )


async def test_a_foreign_next_is_stored_as_the_home_page(oauth: OAuthService, services: Services) -> None:
    assert services.redis is not None
    state = state_of(await oauth.start("https://evil.example/", callback_path=CALLBACK))
    key = state_key(services.settings.redis.key_prefix, state)
    assert (await services.redis.client.get(key)) == DEFAULT_NEXT.encode()


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
        "/" + "a" * 2000,
    ],
)
def test_safe_next_refuses_anything_but_a_local_path(path: str | None) -> None:
    assert safe_next(path) == DEFAULT_NEXT


@pytest.mark.parametrize("path", ["/r/home", "/r/archives/a1b2?tab=followups", "/r/home#top", "/staff/"])
def test_safe_next_keeps_local_paths(path: str) -> None:
    assert safe_next(path) == path
