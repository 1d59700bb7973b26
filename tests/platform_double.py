"""A minimal stand-in for the *remote* WeChat platform, on 127.0.0.1, answering as WeChat does
(JSON with ``errcode``/``errmsg``). Only what the client tests need; the offline sandbox for the demo
is ``wechat_backend/sandbox``.

Like the real ``cgi-bin/token``, every fetch issues a new token and the previous one stops working
(the real platform keeps it 5 more minutes; being stricter makes races visible). ``stable_token``
returns the same token while it is valid. Faults are queued per API path.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from local_server import serving
from tornado.web import Application, RequestHandler

APP_ID = "wxtestapp0000001"
APP_SECRET = "s3cr3t-app-secret-0123456789abcdef"
MP_APP_ID = "wxtestmini000001"
MP_APP_SECRET = "mini-secret-0123456789abcdef0123"


@dataclass
class Fault:
    errcode: int = 0
    errmsg: str = ""
    delay: float = 0.0


@dataclass
class Platform:
    url: str = ""
    token: str | None = None
    stable: str | None = None
    expires_in: int = 7200
    token_delay: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    oauth_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    mp_codes: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, Any]] = field(default_factory=list)
    tags: dict[int, str] = field(default_factory=dict)
    menu: dict[str, Any] = field(default_factory=dict)

    def fail(self, api: str, errcode: int = 0, errmsg: str = "", delay: float = 0.0, count: int = 1) -> None:
        for _ in range(count):
            self.faults[api].append(Fault(errcode, errmsg or f"simulated {errcode}", delay))

    def rotate_token(self) -> str:
        """What another process's fetch does to us: a new token, the old one dead."""
        self.token = "ACCESS" + secrets.token_hex(24)
        return self.token

    def oauth_code(self, openid: str, unionid: str | None = None) -> str:
        code = secrets.token_hex(16)
        self.oauth_codes[code] = {"openid": openid, "unionid": unionid}
        return code


class _Handler(RequestHandler):
    def initialize(self, platform: Platform) -> None:
        self.p = platform

    def check_xsrf_cookie(self) -> None:
        return

    async def get(self, api: str) -> None:
        await self._answer(api)

    async def post(self, api: str) -> None:
        await self._answer(api)

    async def _answer(self, api: str) -> None:
        p = self.p
        p.calls[api] += 1
        fault = p.faults[api].popleft() if p.faults[api] else None
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault and fault.errcode:
            self.write({"errcode": fault.errcode, "errmsg": fault.errmsg.replace("{token}", self._arg("access_token"))})
            return
        route = getattr(self, "api_" + api.replace("/", "_").replace("-", "_"), None)
        if route is None:
            self.set_status(404)
            return
        if api.startswith("cgi-bin/") and api not in ("cgi-bin/token", "cgi-bin/stable_token"):
            token = self._arg("access_token")
            if not token or token not in (p.token, p.stable):
                self.write({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})
                return
        result = await route()
        self.write({"errcode": 0, "errmsg": "ok", **result} if "errcode" not in result else result)

    def _arg(self, name: str) -> str:
        return self.get_query_argument(name, "")

    def _body(self) -> Any:
        return json.loads(self.request.body or b"{}")

    async def api_cgi_bin_token(self) -> dict[str, Any]:
        if self._arg("appid") != APP_ID or self._arg("secret") != APP_SECRET:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        await asyncio.sleep(self.p.token_delay)
        return {"access_token": self.p.rotate_token(), "expires_in": self.p.expires_in}

    async def api_cgi_bin_stable_token(self) -> dict[str, Any]:
        body = self._body()
        if body.get("appid") != APP_ID or body.get("secret") != APP_SECRET:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        await asyncio.sleep(self.p.token_delay)
        if self.p.stable is None or body.get("force_refresh"):
            self.p.stable = "STABLE" + secrets.token_hex(24)
        return {"access_token": self.p.stable, "expires_in": self.p.expires_in}

    async def api_cgi_bin_message_custom_send(self) -> dict[str, Any]:
        self.p.received.append(("custom", self._body()))
        return {}

    async def api_cgi_bin_message_template_send(self) -> dict[str, Any]:
        self.p.received.append(("template", self._body()))
        return {"msgid": 200228332}

    async def api_cgi_bin_menu_create(self) -> dict[str, Any]:
        self.p.menu["menu"] = self._body()
        return {}

    async def api_cgi_bin_menu_addconditional(self) -> dict[str, Any]:
        self.p.menu.setdefault("conditionalmenu", []).append(self._body())
        return {"menuid": "208379533"}

    async def api_cgi_bin_menu_get(self) -> dict[str, Any]:
        return {"errcode": 46003, "errmsg": "menu no exist"} if not self.p.menu else dict(self.p.menu)

    async def api_cgi_bin_tags_create(self) -> dict[str, Any]:
        tag_id = 100 + len(self.p.tags)
        self.p.tags[tag_id] = self._body()["tag"]["name"]
        return {"tag": {"id": tag_id, "name": self.p.tags[tag_id]}}

    async def api_cgi_bin_tags_get(self) -> dict[str, Any]:
        return {"tags": [{"id": i, "name": n, "count": 0} for i, n in self.p.tags.items()]}

    async def api_cgi_bin_tags_members_batchtagging(self) -> dict[str, Any]:
        self.p.received.append(("tagging", self._body()))
        return {}

    async def api_sns_oauth2_access_token(self) -> dict[str, Any]:
        if self._arg("appid") != APP_ID or self._arg("secret") != APP_SECRET:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        code = self._arg("code")
        if code in self.p.used_codes:
            return {"errcode": 40163, "errmsg": "code been used"}
        user = self.p.oauth_codes.pop(code, None)
        if user is None:
            return {"errcode": 40029, "errmsg": "invalid code"}
        self.p.used_codes.add(code)
        answer = {
            "access_token": "WEB" + secrets.token_hex(16),
            "expires_in": 7200,
            "refresh_token": "REFRESH" + secrets.token_hex(16),
            "openid": user["openid"],
            "scope": "snsapi_base",
        }
        if user["unionid"]:
            answer["unionid"] = user["unionid"]
        return answer

    async def api_sns_jscode2session(self) -> dict[str, Any]:
        if self._arg("appid") != MP_APP_ID or self._arg("secret") != MP_APP_SECRET:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        openid = self.p.mp_codes.pop(self._arg("js_code"), None)
        if openid is None:
            return {"errcode": 40029, "errmsg": "invalid code"}
        return {"openid": openid, "session_key": "SESSIONKEY" + secrets.token_hex(8)}


@asynccontextmanager
async def running_platform() -> AsyncIterator[Platform]:
    platform = Platform()
    # The remote platform's own access log is not ours to check: keep it out of caplog.
    app = Application([(r"/(.*)", _Handler, {"platform": platform})], log_function=lambda handler: None)
    async with serving(app) as base:
        platform.url = base + "/"
        yield platform


def wechat_overrides(platform: Platform, **extra: Any) -> dict[str, Any]:
    """``[wechat]`` and ``[miniprogram]`` settings pointing at the double."""
    return {
        "wechat": {
            "app_id": APP_ID,
            "app_secret": APP_SECRET,
            "api_base_url": platform.url,
            "open_base_url": platform.url,
            **extra,
        },
        "miniprogram": {"app_id": MP_APP_ID, "app_secret": MP_APP_SECRET},
    }
