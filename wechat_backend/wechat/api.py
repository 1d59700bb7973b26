"""The few WeChat platform calls we make: one small async client, base URL from config.

wechatpy stays for what it does well (signatures, message crypto, parsing, replies); its client is
not used because it blocks, sets no timeout, fetches the token from a hard-coded address and retries
token errors without a depth limit. Here:

* :class:`WeChatHttp` is the transport: ``httpx.AsyncClient``, ``[wechat] api_base_url``, timeouts
  from ``[wechat] timeout_seconds``, a non-zero ``errcode`` raised as :class:`WeChatApiError`, every
  call counted by (api path, outcome) in :class:`ApiCallCounter`.
* :class:`WeChatApi` adds the shared access token (:mod:`wechat_backend.wechat.token`) and retries a
  call **once** when the platform says the token is invalid or expired (40001/40014/42001), after
  dropping the cached token only if it is still the one that failed.

Secrets (access token, AppSecret, OAuth codes) travel in query strings because the platform wants
them there; they never appear in an exception's text or in a log line (see :class:`_RedactUrls`).

官方文档：https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Overview.html
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ..config import MiniprogramSettings, WechatSettings

log = logging.getLogger("wechat_backend.wechat")

# 40001 access_token 无效或不是最新；40014 不合法的 access_token；42001 access_token 超时。
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
JsonObject = dict[str, Any]


class WeChatError(Exception):
    """A platform call did not succeed. The text names the API, never a secret."""

    def __init__(self, api: str, detail: str) -> None:
        self.api = api
        super().__init__(f"WeChat {api}: {detail}")


@dataclass(frozen=True)
class QrTicket:
    """A parametric QR code: the ticket (for showqrcode) and the URL the QR code encodes."""

    ticket: str
    url: str
    expire_seconds: int | None


class WeChatApiError(WeChatError):
    """The platform answered with a non-zero ``errcode`` (wechatpy's ``WeChatClientException``)."""

    def __init__(self, errcode: int, errmsg: str, *, api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        super().__init__(api, f"errcode={errcode} errmsg={errmsg}")


class WeChatUnavailable(WeChatError):
    """No usable answer: timeout, connection refused, an HTTP error status or a body that is not JSON.
    ``reason`` is one of ``timeout``, ``connect``, ``http_<status>``, ``bad_response``, ``token_store``."""

    def __init__(self, api: str, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(api, detail)


class ApiCallCounter:
    """Calls per (api path, outcome) in this process; outcome is the errcode as text (``"0"`` for
    success) or a :class:`WeChatUnavailable` reason. A /metrics page reads :meth:`snapshot`."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, api: str, outcome: str) -> None:
        self._counts[(api, outcome)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self._counts)

    def get(self, api: str, outcome: str) -> int:
        return self._counts[(api, outcome)]


# --------------------------------------------------------------------------- redaction

_SECRET_PARAMS = ("access_token", "secret", "code", "js_code")
_SECRET_IN_URL = re.compile(r"\b(" + "|".join(_SECRET_PARAMS) + r")=[^&#\s\"']*")


def redact_url(url: object) -> str:
    """The URL with the values of ``access_token``, ``secret``, ``code`` and ``js_code`` hidden."""
    return _SECRET_IN_URL.sub(r"\1=***", str(url))


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO; ours carry the access token or the AppSecret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL | str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrls) for f in logger.filters):
        logger.addFilter(_RedactUrls())


def _hide(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


# --------------------------------------------------------------------------- transport


class WeChatHttp:
    """One ``httpx.AsyncClient`` for every platform call of this process (token fetches included)."""

    def __init__(self, settings: WechatSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        _install_redaction()
        self.api_base_url = settings.api_base_url.rstrip("/") + "/"
        self.timeout_seconds = settings.timeout_seconds
        self.calls = ApiCallCounter()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "wechat-backend"},
            follow_redirects=False,
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        api: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        hide: Sequence[str] = (),
    ) -> JsonObject:
        """``api`` is the platform path (``cgi-bin/menu/create``). ``hide`` lists secret values to
        strip from anything the platform echoes back into ``errmsg``."""
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if content is not None else None
        try:
            response = await self._client.request(
                method, self.api_base_url + api, params=params, content=content, headers=headers
            )
        except httpx.TimeoutException:
            raise self._unavailable(api, "timeout", f"no answer within {self.timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(api, "connect", f"connection failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise self._unavailable(api, f"http_{response.status_code}", f"HTTP {response.status_code}")
        try:
            data = json.loads(response.content)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            data = None
        if not isinstance(data, dict):
            raise self._unavailable(api, "bad_response", "the answer is not a JSON object")
        errcode = data.get("errcode") or 0
        if not isinstance(errcode, int):
            raise self._unavailable(api, "bad_response", "errcode is not a number")
        self.calls.record(api, str(errcode))
        if errcode:
            errmsg = _hide(str(data.get("errmsg", "")), hide)
            log.warning("wechat %s errcode=%s", api, errcode)
            raise WeChatApiError(errcode, errmsg, api=api)
        return data

    def _unavailable(self, api: str, reason: str, detail: str) -> WeChatUnavailable:
        self.calls.record(api, reason)
        log.warning("wechat %s unavailable: %s", api, reason)
        return WeChatUnavailable(api, reason, detail)


# --------------------------------------------------------------------------- the API


class TokenSource(Protocol):
    """What :class:`WeChatApi` needs of the access-token store (:class:`~.token.AccessTokenStore`)."""

    async def get(self) -> str: ...

    async def invalidate_if_current(self, token: str) -> bool: ...


@dataclass(frozen=True)
class OAuthGrant:
    """What ``sns/oauth2/access_token`` tells us. The web access token itself is not kept."""

    openid: str
    unionid: str | None
    scope: str
    snapshot_user: bool


@dataclass(frozen=True)
class MiniSession:
    """What ``sns/jscode2session`` tells us. ``session_key`` must never leave the server."""

    openid: str
    unionid: str | None
    session_key: str


class WeChatApi:
    """The platform calls the product makes. Methods that need the access token take it from the
    shared store and retry once on a token error; the others (OAuth, code2session) use the app secret."""

    def __init__(
        self,
        settings: WechatSettings,
        miniprogram: MiniprogramSettings,
        http: WeChatHttp,
        tokens: TokenSource | None,
    ) -> None:
        self._settings = settings
        self._miniprogram = miniprogram
        self._http = http
        self._tokens = tokens

    @property
    def calls(self) -> ApiCallCounter:
        return self._http.calls

    async def close(self) -> None:
        await self._http.close()

    # ------------------------------------------------------------------ core

    async def get_json(self, api: str, params: Mapping[str, str] | None = None) -> JsonObject:
        """GET ``api`` with the access token added."""
        return await self._with_token("GET", api, params, None)

    async def post_json(self, api: str, body: Any, params: Mapping[str, str] | None = None) -> JsonObject:
        """POST ``body`` as UTF-8 JSON (Chinese unescaped, as the platform expects) with the token."""
        return await self._with_token("POST", api, params, body)

    async def _with_token(self, method: str, api: str, params: Mapping[str, str] | None, body: Any) -> JsonObject:
        if self._tokens is None:
            raise WeChatUnavailable(api, "token_store", "no access-token store (Redis is not configured)")
        token = await self._tokens.get()
        try:
            return await self._http.call(method, api, params=_authed(params, token), body=body, hide=(token,))
        except WeChatApiError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            # Drop the token only if nobody replaced it meanwhile, then retry once — never more
            # (wechatpy's unbounded retry recursed; WxJava retries once, issue #1481).
            await self._tokens.invalidate_if_current(token)
            log.info("wechat %s errcode=%s: token dropped, retrying once", api, exc.errcode)
        token = await self._tokens.get()
        return await self._http.call(method, api, params=_authed(params, token), body=body, hide=(token,))

    # ------------------------------------------------------------------ messages

    async def send_custom_text(self, openid: str, text: str) -> None:
        """发送客服消息（文本）：48 小时内互动过的用户才能收到（45015）。
        https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html"""
        await self.post_json(
            "cgi-bin/message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": text}}
        )

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        url: str | None = None,
        *,
        client_msg_id: str | None = None,
    ) -> int | None:
        """发送模板消息；``data`` 为 字段名 → 值（2023-05-04 起不再支持颜色、first、remark）。返回 msgid。
        ``client_msg_id``：同一用户同一 id 十分钟内只收到一次（防重发）。
        https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html"""
        body: JsonObject = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if url:
            body["url"] = url
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        answer = await self.post_json("cgi-bin/message/template/send", body)
        msgid = answer.get("msgid")
        return msgid if isinstance(msgid, int) else None

    # ------------------------------------------------------------------ menu

    async def create_menu(self, buttons: Sequence[Mapping[str, Any]]) -> None:
        """创建自定义菜单。https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Creating_Custom-Defined_Menu.html"""
        await self.post_json("cgi-bin/menu/create", {"button": list(buttons)})

    async def add_conditional_menu(self, buttons: Sequence[Mapping[str, Any]], tag_id: int) -> str:
        """创建个性化菜单（按用户标签匹配），返回 menuid。
        https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Personalized_menu_interface.html"""
        answer = await self.post_json(
            "cgi-bin/menu/addconditional", {"button": list(buttons), "matchrule": {"tag_id": str(tag_id)}}
        )
        return str(answer.get("menuid", ""))

    async def get_menu(self) -> JsonObject:
        """查询自定义菜单（含个性化菜单 ``conditionalmenu``）。
        https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Querying_Custom_Menus.html"""
        return await self.get_json("cgi-bin/menu/get")

    # ------------------------------------------------------------------ QR codes

    async def create_qrcode(self, scene_str: str, *, expire_seconds: int | None = None) -> QrTicket:
        """生成带参数的二维码。``expire_seconds`` None: 永久二维码（QR_LIMIT_STR_SCENE，最多 10 万个）；
        否则临时二维码（QR_STR_SCENE，最长 30 天）。扫码关注的事件带回 ``qrscene_<scene_str>``，
        已关注者扫码是 SCAN 事件，EventKey 为 ``scene_str``。
        https://developers.weixin.qq.com/doc/offiaccount/Account_Management/Generating_a_Parametric_QR_Code.html"""
        body: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if expire_seconds is None else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}},
        }
        if expire_seconds is not None:
            body["expire_seconds"] = expire_seconds
        answer = await self.post_json("cgi-bin/qrcode/create", body)
        return QrTicket(str(answer["ticket"]), str(answer["url"]), answer.get("expire_seconds"))

    # ------------------------------------------------------------------ user tags

    async def create_tag(self, name: str) -> int:
        """创建用户标签，返回标签 id。https://developers.weixin.qq.com/doc/offiaccount/User_Management/User_Tag_Management.html"""
        answer = await self.post_json("cgi-bin/tags/create", {"tag": {"name": name}})
        return int(answer["tag"]["id"])

    async def get_tags(self) -> list[JsonObject]:
        """获取已创建的标签：``[{"id", "name", "count"}]``。"""
        answer = await self.get_json("cgi-bin/tags/get")
        return list(answer.get("tags", []))

    async def tag_users(self, tag_id: int, openids: Sequence[str]) -> None:
        """批量为用户打标签（每次最多 50 个 openid）。"""
        for start in range(0, len(openids), 50):
            await self.post_json(
                "cgi-bin/tags/members/batchtagging", {"openid_list": list(openids[start : start + 50]), "tagid": tag_id}
            )

    async def user_unionid(self, openid: str) -> str | None:
        """A follower's unionid from 获取用户基本信息 (only when the account is bound to an open
        platform account; ``snsapi_base`` login never carries it).
        https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html"""
        answer = await self.get_json("cgi-bin/user/info", {"openid": openid, "lang": "zh_CN"})
        unionid = answer.get("unionid")
        return unionid if isinstance(unionid, str) and unionid else None

    # ------------------------------------------------------------------ login

    async def oauth_exchange(self, code: str) -> OAuthGrant:
        """网页授权：用 code 换取 openid（code 五分钟内有效、只能用一次；40029 无效，40163 已使用）。
        https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html"""
        s = self._settings
        answer, openid = await self._login_exchange("sns/oauth2/access_token", s.app_id, s.app_secret, code=code)
        return OAuthGrant(
            openid=openid,
            unionid=answer.get("unionid") or None,
            scope=str(answer.get("scope", "")),
            snapshot_user=answer.get("is_snapshotuser") == 1,
        )

    async def code2session(self, js_code: str) -> MiniSession:
        """小程序登录：``wx.login`` 的 code 换取 openid 与 session_key（40029 无效 code，45011 频率限制）。
        https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html"""
        m = self._miniprogram
        answer, openid = await self._login_exchange("sns/jscode2session", m.app_id, m.app_secret, js_code=js_code)
        unionid = answer.get("unionid") or None
        return MiniSession(openid=openid, unionid=unionid, session_key=str(answer.get("session_key", "")))

    async def _login_exchange(self, api: str, app_id: str, secret: str, **code: str) -> tuple[JsonObject, str]:
        """A login code exchanged for the answer and its openid (web OAuth and mini-program alike;
        the secret and the code are kept out of logs)."""
        answer = await self._http.call(
            "GET",
            api,
            params={"appid": app_id, "secret": secret, **code, "grant_type": "authorization_code"},
            hide=(secret, *code.values()),
        )
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatUnavailable(api, "bad_response", "no openid in the answer")
        return answer, openid


def _authed(params: Mapping[str, str] | None, token: str) -> dict[str, str]:
    return {**(params or {}), "access_token": token}
