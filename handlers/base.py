"""BaseHandler: the one error mapper, deny-by-default auth, and a log line without personal data."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import tornado.web

from wechat_backend.binding import Caller
from wechat_backend.client_ip import address_in, client_ip
from wechat_backend.errors import AppError, BadInput, NotFound, NotLoggedIn, TooLarge
from wechat_backend.web_sessions import Session

if TYPE_CHECKING:
    from wechat_backend.services import Services

log = logging.getLogger("wechat_backend.http")
access_log = logging.getLogger("wechat_backend.access")

F = TypeVar("F", bound=Callable[..., Any])


def public(method: F) -> F:
    """Marks a verb that anonymous callers may use; every other verb needs a logged-in caller."""
    method.__wb_public__ = True  # type: ignore[attr-defined]
    return method


class BaseHandler(tornado.web.RequestHandler):
    request_id: str

    @property
    def services(self) -> Services:
        return self.settings["services"]

    @property
    def is_api(self) -> bool:
        return self.request.path.startswith("/api/") or self.request.path in ("/healthz", "/readyz")

    @property
    def https(self) -> bool:
        return self.services.settings.server.public_base_url.startswith("https://")

    @property
    def from_monitor(self) -> bool:
        """The client (as :attr:`client_ip` sees it, behind trusted proxies too) is in
        ``[server] metrics_allow``: it may read metrics and which part is failing."""
        return address_in(self.client_ip, self.services.settings.server.metrics_allow)

    @property
    def client_ip(self) -> str:
        s = self.services.settings.server
        return client_ip(self.request.remote_ip or "", self.request.headers.get("X-Forwarded-For"), s.trusted_proxies)

    @property
    def caller(self) -> Caller:
        """The logged-in identity, with what the audit log keeps about the request."""
        # A staff session's id names a staff account, not an identity: never act as a resident.
        if self.current_user is None or self.current_user.kind != "resident":
            raise NotLoggedIn()
        return Caller(self.current_user.identity_id, self.request_id, self.client_ip)

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object; too large → 413, not an object → 400."""
        body = self.request.body or b""
        if len(body) > self.services.settings.limits.max_body_bytes:
            raise TooLarge()
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            raise BadInput("body", "请求内容不是有效的 JSON") from None
        if not isinstance(data, dict):
            raise BadInput("body", "请求内容应为 JSON 对象")
        return data

    def form(self) -> dict[str, str]:
        """A posted form's fields (first value of each), for the H5 pages."""
        if len(self.request.body or b"") > self.services.settings.limits.max_body_bytes:
            raise TooLarge()
        return {k: self.get_body_argument(k, "") for k in self.request.body_arguments if k != "_xsrf"}

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-Id", self.request_id)
        self.current_user = await self._load_session()
        verb = self.request.method.lower()
        method = getattr(self, verb, None)
        if method is None or getattr(type(self), verb, None) is getattr(tornado.web.RequestHandler, verb, None):
            raise tornado.web.HTTPError(405)  # a verb this handler does not define
        if not getattr(method, "__wb_public__", False) and self.current_user is None:
            if self.is_api or self.request.method not in ("GET", "HEAD"):
                raise NotLoggedIn()  # before the XSRF check: say what is wrong, "log in"
            # A page: log in through WeChat and come back here.
            self.redirect(self.reverse_url("oauth_start") + "?" + urlencode({"next": self.request.uri}))
            return
        # Checked here, not before prepare as Tornado does: Bearer callers skip it (STYLE rule 7).
        self._xsrf_ready = True
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and self.settings.get("xsrf_cookies"):
            self.check_xsrf_cookie()

    _xsrf_ready = False
    _bearer = False
    xsrf_exempt = False  # only for a login that sets no cookie (the mini-program's)

    def check_xsrf_cookie(self) -> None:
        if self._xsrf_ready and not self._bearer and not self.xsrf_exempt:
            super().check_xsrf_cookie()

    async def _load_session(self) -> Session | None:
        """The session named by ``Authorization: Bearer <id>`` or by the session cookie."""
        store = self.services.web_sessions
        auth = self.request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            self._bearer = True
            return await store.load(auth[7:].strip()) if store else None
        session_id = self.get_cookie(session_cookie_name(self.services.settings.server.public_base_url))
        return await store.load(session_id) if store and session_id else None

    def set_staff_cookie(self, session_id: str) -> None:
        """The staff session's cookie: HttpOnly, SameSite=Strict (the 工作台 is never entered from
        another site's link with its session), a browser-session cookie the server times out."""
        self.set_cookie(
            staff_cookie_name(self.services.settings.server.public_base_url),
            session_id,
            path="/",
            httponly=True,
            secure=self.https,
            samesite="Strict",
        )

    def set_session_cookie(self, session_id: str) -> None:
        """Only the random id goes into the cookie; a browser-session cookie, the server times it out."""
        self.set_cookie(
            session_cookie_name(self.services.settings.server.public_base_url),
            session_id,
            path="/",
            httponly=True,
            secure=self.https,
            samesite="Lax",
        )

    async def renew_session(self) -> None:
        """A new session id for the same login (after a binding: whatever id someone may have
        planted or seen before is worthless now). A Bearer session keeps its token: the
        mini-program holds it and there is no cookie to plant."""
        store = self.services.web_sessions
        if self._bearer or self.current_user is None or store is None:
            return
        self.set_session_cookie(await store.renew(self.current_user))

    async def end_session(self) -> None:
        """Log out: the session ends on the server, and the cookie is cleared."""
        store = self.services.web_sessions
        if self.current_user is not None and store is not None:
            await store.close(self.current_user.id)
        if not self._bearer:
            self.clear_cookie(session_cookie_name(self.services.settings.server.public_base_url), path="/")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Never log the URI's query string or the body: they may carry codes, phones or ID numbers.
        where = f"{self.request.method} {self.request.path} request_id={getattr(self, 'request_id', '-')}"
        if isinstance(value, AppError):
            log.info("%s -> %s", where, value.code)
        elif isinstance(value, tornado.web.HTTPError):
            log.info("%s -> HTTP %s", where, value.status_code)
        else:
            log.error("%s -> unhandled %s", where, typ.__name__, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AppError):
            self.set_status(exc.status)
            for name, value in exc.headers.items():
                self.set_header(name, value)
            body = exc.to_json()
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            mapped = NotFound() if status_code == 404 else AppError("请求无效，请返回重试")
            body = {**mapped.to_json(), "error": mapped.code if status_code == 404 else "bad_request"}
        else:
            body = {
                "error": "internal",
                "message": "系统繁忙，请稍后再试",
                "request_id": getattr(self, "request_id", ""),
            }
        self.set_header("Cache-Control", "no-store")
        if self.is_api:
            self.finish(body)
        else:
            self.render("error.html", message=body["message"], request_id=getattr(self, "request_id", ""))


def session_cookie_name(public_base_url: str) -> str:
    """``__Host-wb_session`` (Secure, Path=/, no Domain) when the site is served over https."""
    return "__Host-wb_session" if public_base_url.startswith("https://") else "wb_session"


def staff_cookie_name(public_base_url: str) -> str:
    """The staff session's own cookie (``__Host-`` under https, as the resident's)."""
    return "__Host-wb_staff" if public_base_url.startswith("https://") else "wb_staff"


class NotFoundHandler(BaseHandler):
    """Unknown paths: the 404 page (or JSON under /api/)."""

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        raise NotFound()


@tornado.web.stream_request_body
class BodyTooLargeHandler(BaseHandler):
    """Any route whose declared body exceeds ``[limits] max_body_bytes``: 413, the body unread."""

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        raise TooLarge()

    def data_received(self, chunk: bytes) -> None:
        """Never called with data that is kept: the answer is sent before the body is read."""


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log and metrics: method, path without query string, status, time. No personal data.
    Metrics label by handler class, a bounded set, never by path."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    level = logging.INFO if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path, 1000.0 * seconds)
    services = handler.settings.get("services")
    if services is not None:
        services.metrics.observe(type(handler).__name__, handler.request.method or "", status, seconds)
