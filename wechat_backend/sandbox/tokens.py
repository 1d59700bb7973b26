"""Credentials: access_token and stable_token, OAuth web authorization, mini-program code2session.

- 获取 Access token: https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
- 稳定版接口调用凭据: https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken
- 网页授权: https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
- code2Session: https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html
"""

from __future__ import annotations

import secrets
from typing import Any

from .calls import Api, PlatformCall, PlatformError
from .state import TOKEN_OVERLAP, TOKEN_TTL, AccessToken, Account, LoginCode, SandboxState

STABLE_RENEW_BEFORE = 300  # the platform renews a stable token 5 minutes before it expires


def check_token(state: SandboxState, call: PlatformCall) -> AccessToken:
    """The call's ``access_token``: missing 41001, unknown or superseded 40001, expired 42001."""
    value = call.arg("access_token")
    if not value:
        raise PlatformError(41001)
    token = state.tokens.get(value)
    now = state.now()
    if token is None or (token.revoked_at is not None and now >= token.revoked_at):
        raise PlatformError(40001)
    if now >= token.expires_at:
        raise PlatformError(42001)
    if token.app_id != state.official.app_id:
        raise PlatformError(48001)
    return token


def _app(state: SandboxState, app_id: str, secret: str, *, only: Account | None = None) -> Account:
    if not app_id:
        raise PlatformError(41002)
    account = state.account(app_id)
    if account is None or (only is not None and account != only):
        raise PlatformError(40013)
    if not secret:
        raise PlatformError(41004)
    if not secrets.compare_digest(secret, account.app_secret):
        raise PlatformError(40125)
    return account


def _token_json(token: AccessToken, now: float) -> dict[str, Any]:
    return {"access_token": token.value, "expires_in": int(token.expires_at - now)}


def get_token(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET cgi-bin/token: a new token each time; the previous one keeps working for 5 minutes."""
    if call.arg("grant_type") != "client_credential":
        raise PlatformError(40002)
    account = _app(state, call.arg("appid"), call.arg("secret"))
    state.revoke_tokens(account.app_id, stable=False, grace=TOKEN_OVERLAP)
    return _token_json(state.issue_token(account.app_id), state.now())


def get_stable_token(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/stable_token: isolated from cgi-bin/token; the same token until 5 minutes before
    it expires, unless ``force_refresh`` (which invalidates the old one at once)."""
    body = call.json()
    if body.get("grant_type") != "client_credential":
        raise PlatformError(40002)
    account = _app(state, str(body.get("appid") or ""), str(body.get("secret") or ""))
    now = state.now()
    current = state.current_stable_token(account.app_id)
    if body.get("force_refresh") is True:
        state.revoke_tokens(account.app_id, stable=True, grace=0)
    elif current is not None and current.expires_at - now >= STABLE_RENEW_BEFORE:
        return _token_json(current, now)
    return _token_json(state.issue_token(account.app_id, stable=True), now)


def _take_code(state: SandboxState, value: str, kind: str, app_id: str) -> LoginCode:
    if not value:
        raise PlatformError(41008)
    code = state.codes.get(value)
    if code is None or code.kind != kind or code.app_id != app_id or state.now() >= code.expires_at:
        raise PlatformError(40029)
    if code.used:
        raise PlatformError(40163)
    code.used = True
    return code


def oauth_access_token(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET sns/oauth2/access_token: exchange a web-authorization code (single use, 5 minutes)."""
    account = _app(state, call.arg("appid"), call.arg("secret"), only=state.official)
    if call.arg("grant_type") != "authorization_code":
        raise PlatformError(40002)
    code = _take_code(state, call.arg("code"), "oauth", account.app_id)
    user = state.users[code.openid]
    token = state.issue_web_token(user.openid, code.scope)
    out: dict[str, Any] = {
        "access_token": token.value,
        "expires_in": TOKEN_TTL,
        "refresh_token": secrets.token_urlsafe(64),
        "openid": user.openid,
        "scope": code.scope,
    }
    if code.scope == "snsapi_userinfo" and user.unionid:
        out["unionid"] = user.unionid
    return out


def oauth_userinfo(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET sns/userinfo: only for an snsapi_userinfo web token; no gender or region since 2021."""
    token = state.web_tokens.get(call.arg("access_token"))
    if token is None:
        raise PlatformError(40001 if call.arg("access_token") else 41001)
    if state.now() >= token.expires_at:
        raise PlatformError(42001)
    if call.arg("openid") != token.openid:
        raise PlatformError(40003)
    if token.scope != "snsapi_userinfo":
        raise PlatformError(48001)
    user = state.users[token.openid]
    out: dict[str, Any] = {
        "openid": user.openid,
        "nickname": user.nickname,
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": "",
        "privilege": [],
    }
    if user.unionid:
        out["unionid"] = user.unionid
    return out


def jscode2session(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET sns/jscode2session: a mini-program ``wx.login`` code for the person's mini-program openid."""
    account = _app(state, call.arg("appid"), call.arg("secret"), only=state.miniprogram)
    if call.arg("grant_type") not in ("", "authorization_code"):
        raise PlatformError(40002)
    code = _take_code(state, call.arg("js_code"), "mp", account.app_id)
    user = state.users[code.openid]
    out = {"openid": user.mp_openid, "session_key": secrets.token_urlsafe(18)}
    if user.unionid:
        out["unionid"] = user.unionid
    return out


APIS = {
    "cgi-bin/token": Api(get_token, needs_token=False),
    "cgi-bin/stable_token": Api(get_stable_token, needs_token=False),
    "sns/oauth2/access_token": Api(oauth_access_token, needs_token=False),
    "sns/userinfo": Api(oauth_userinfo, needs_token=False),
    "sns/jscode2session": Api(jscode2session, needs_token=False),
}
