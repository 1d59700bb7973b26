"""The sandbox's own handler base, the platform API, the OAuth authorize page and the phone page.

``SandboxHandler`` subclasses ``tornado.web.RequestHandler``, not the product's ``BaseHandler``: the
sandbox plays WeChat, so it has no product login and no XSRF cookie (tests, scripts, the worker and
the phone page all call it), and it is mounted only in demo mode.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

import tornado.web

from .callback import CallbackClient, CallbackError
from .platform import answer, apply_fault
from .state import SandboxState, SimUser

log = logging.getLogger("wechat_backend.sandbox")

USER_COOKIE = "sandbox_openid"  # set by the phone page: who is "inside WeChat" for silent snsapi_base
SCOPES = ("snsapi_base", "snsapi_userinfo")
MAX_STATE_BYTES = 128


class ControlError(Exception):
    """A control-API call that cannot be done: HTTP status, stable code, Chinese message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        super().__init__(code)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class SandboxHandler(tornado.web.RequestHandler):
    state: SandboxState
    callback: CallbackClient

    def initialize(self, state: SandboxState, callback: CallbackClient) -> None:
        self.state = state
        self.callback = callback

    def check_xsrf_cookie(self) -> None:
        """No XSRF check: the sandbox keeps no session worth forging (see the module docstring)."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def on_finish(self) -> None:
        # Whatever changes the state comes as a POST or DELETE: the store writes it (debounced).
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            self.state.changed()

    @property
    def is_page(self) -> bool:
        return "/api/" not in self.request.path

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(value, ensure_ascii=False))

    def json_body(self) -> dict[str, Any]:
        if not self.request.body.strip():
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise ControlError(400, "bad_input", "请求体应为 JSON 对象")
        return data

    def find_user(self, openid: str) -> SimUser:
        user = self.state.users.get(openid)
        if user is None:
            raise ControlError(404, "not_found", "未找到该模拟用户，请先创建")
        return user

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # The path only: query strings here carry secrets, codes and tokens.
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, ControlError | CallbackError | tornado.web.HTTPError):
            log.info("%s -> %s", where, getattr(value, "code", None) or getattr(value, "status_code", ""))
        else:
            log.error("%s -> unhandled %s", where, typ.__name__, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ControlError | CallbackError):
            status, body = exc.status, exc.to_json()
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            status, body = status_code, {"error": "bad_request", "message": "请求无效，请检查后重试"}
        else:
            status, body = status_code, {"error": "internal", "message": "沙箱出错了，请查看服务日志"}
        if self.is_page:
            self.set_status(status)
            self.render("error.html", message=body["message"], request_id="")
        else:
            self.write_json(body, status)


class PlatformHandler(SandboxHandler):
    """``cgi-bin/…`` and ``sns/…``: the simulated api.weixin.qq.com (see ``platform.py``)."""

    async def get(self, path: str) -> None:
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        status, body = await answer(self.state, path, query, self.request.body)
        self.write_json(body, status)

    post = get

    @property
    def is_page(self) -> bool:
        return False


class AuthorizeHandler(SandboxHandler):
    """``connect/oauth2/authorize``: WeChat's web authorization, as a consent page.

    Inside the phone page the user is known (cookie ``sandbox_openid``), so ``snsapi_base`` is
    silent as in WeChat; otherwise the page lets you pick or create the simulated user.
    """

    def params(self) -> dict[str, str]:
        p = {k: self.get_query_argument(k, "") for k in ("appid", "redirect_uri", "response_type", "scope", "state")}
        error = None
        target = urllib.parse.urlsplit(p["redirect_uri"])
        if p["appid"] != self.state.official.app_id:
            error = "40013 公众号 AppID 不正确"
        elif target.scheme not in ("http", "https") or not target.hostname:
            error = "10003 redirect_uri 参数错误"
        elif self.state.oauth_domains and target.hostname not in self.state.oauth_domains:
            error = "10003 redirect_uri 域名与后台配置不一致"
        elif p["response_type"] != "code":
            error = "10004 response_type 参数错误"
        elif p["scope"] not in SCOPES:
            error = "10005 此公众号并没有这些 scope 的权限"
        elif len(p["state"].encode()) > MAX_STATE_BYTES:
            error = "state 参数超过 128 字节"
        if error:
            raise ControlError(400, "bad_request", f"授权失败：{error}")
        return p

    def back_to_site(self, p: dict[str, str], user: SimUser | None) -> None:
        args = {"state": p["state"]}
        if user is not None:
            args = {"code": self.state.issue_code("oauth", user, scope=p["scope"]).code, **args}
        sep = "&" if urllib.parse.urlsplit(p["redirect_uri"]).query else "?"
        self.redirect(p["redirect_uri"] + sep + urllib.parse.urlencode(args))

    def show(self, p: dict[str, str], error: str = "") -> None:
        users = sorted(self.state.users.values(), key=lambda u: u.nickname)
        self.render("sandbox/authorize.html", p=p, users=users, chosen=self.get_cookie(USER_COOKIE), error=error)

    async def get(self) -> None:
        failed = await apply_fault(self.state, "connect/oauth2/authorize")
        if failed is not None:
            raise ControlError(503, "fault", f"授权失败：{failed['errcode']}（沙箱模拟的故障）")
        p = self.params()
        known = self.state.users.get(self.get_cookie(USER_COOKIE) or "")
        if known is not None and p["scope"] == "snsapi_base":
            self.back_to_site(p, known)
            return
        self.show(p)

    async def post(self) -> None:
        p = self.params()
        if self.get_body_argument("action", "") == "deny":
            self.back_to_site(p, None)
            return
        openid = self.get_body_argument("openid", "")
        nickname = self.get_body_argument("nickname", "").strip()
        if openid:
            user = self.state.users.get(openid)
        elif nickname:
            user = self.state.create_user(nickname[:32])
        else:
            user = None
        if user is None:
            self.show(p, error="请选择一位用户，或填写昵称新建一位")
            return
        self.set_cookie(USER_COOKIE, user.openid, path="/sandbox/", samesite="Lax")
        self.back_to_site(p, user)


class PhoneHandler(SandboxHandler):
    """The phone page: a simulated WeChat client for one user at a time."""

    def get(self) -> None:
        self.render("sandbox/phone.html")


class ApiNotFoundHandler(SandboxHandler):
    """Any other ``/sandbox/api/…`` path: a JSON 404 rather than the product's 404 page."""

    def prepare(self) -> None:
        raise ControlError(404, "not_found", "沙箱没有这个接口")
