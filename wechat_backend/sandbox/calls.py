"""One call to the simulated platform API: its input, its error codes, and how an answer is shaped.

The platform answers HTTP 200 with JSON; a failure is ``{"errcode": n, "errmsg": "… rid: …"}``
like api.weixin.qq.com (全局返回码: https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .state import AccessToken, SandboxState

OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40029: "invalid code",
    40032: "invalid openid list size",
    40037: "invalid template_id",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45056: "too many tags now, no need to add new",
    45058: "can't modify sys tag",
    45059: "user has too many tags",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
    46003: "menu no exist",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
    65301: "no such conditional menu",
    65303: "there is no selfmenu, please create selfmenu first",
    65304: "match rule empty",
}


class PlatformError(Exception):
    """A call the platform refuses with ``errcode``."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(errcode)

    def to_json(self) -> dict[str, Any]:
        return error_json(self.errcode, self.detail)


def error_json(errcode: int, detail: str = "") -> dict[str, Any]:
    text = ERRMSG.get(errcode, "error")
    if detail:
        text = f"{text}: {detail}"
    return {"errcode": errcode, "errmsg": f"{text} rid: {secrets.token_hex(4)}-{secrets.token_hex(8)}"}


@dataclass(frozen=True)
class PlatformCall:
    """What a platform API function gets: the query string, the raw body and the checked token."""

    path: str
    query: Mapping[str, str]
    body: bytes = b""
    token: AccessToken | None = None

    def arg(self, name: str) -> str:
        return self.query.get(name, "")

    def json(self) -> dict[str, Any]:
        """The JSON body; an empty one is 44002, anything but an object is 47001."""
        if not self.body.strip():
            raise PlatformError(44002)
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            raise PlatformError(47001) from None
        if not isinstance(data, dict):
            raise PlatformError(47001)
        return data


@dataclass(frozen=True)
class Api:
    """One platform path: the function answering it, and whether it takes ``access_token``."""

    answer: Callable[[SandboxState, PlatformCall], dict[str, Any]]
    needs_token: bool = True


def text_field(data: Mapping[str, Any], name: str, errcode: int = 47001) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise PlatformError(errcode, name)
    return value
