"""BaseHandler: the one error mapper, deny-by-default auth, and a log line without personal data."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web

from wechat_backend.errors import AppError, NotFound, NotLoggedIn

if TYPE_CHECKING:
    from wechat_backend.app import Services

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

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-Id", self.request_id)
        method = getattr(self, self.request.method.lower(), None)
        if not getattr(method, "__wb_public__", False) and self.current_user is None:
            raise NotLoggedIn()

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


class NotFoundHandler(BaseHandler):
    """Unknown paths: the 404 page (or JSON under /api/)."""

    async def prepare(self) -> None:
        self.request_id = secrets.token_hex(8)
        raise NotFound()


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: method, path without query string, status, time. No personal data."""
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.ERROR
    access_log.log(
        level,
        "%d %s %s %.1fms",
        status,
        handler.request.method,
        handler.request.path,
        1000.0 * handler.request.request_time(),
    )
