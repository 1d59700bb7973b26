"""The JSON control API (DESIGN.md, "The sandbox"): act as a WeChat user, read what the platform saw.

Calls that act as a user (follow, unfollow, scan, text, click, view) POST the matching message or
event to our ``/wechat`` and answer ``{"reply": …}`` (plus ``"msgtype"`` when the reply is not text).
"""

from __future__ import annotations

import secrets
from typing import Any

from .callback import Reply
from .handlers import ControlError, SandboxHandler
from .menus import menus_json
from .platform import APIS
from .state import SimUser, new_wechat_id

FAULTABLE = {*APIS, "connect/oauth2/authorize"}
ACTIONS = ("follow", "unfollow", "scan", "text", "click", "view")  # UserActionHandler methods


def _text(body: dict[str, Any], name: str, *, max_len: int = 2048) -> str:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ControlError(400, "bad_input", f"请检查填写的内容：{name}", field=name)
    return value


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlError(400, "bad_input", f"请检查填写的内容：{name}", field=name)
    return value


class UsersHandler(SandboxHandler):
    def get(self) -> None:
        self.write_json({"users": [self.state.user_json(u) for u in self.state.users.values()]})

    def post(self) -> None:
        """``{"nickname", "unionid"?}`` → the new user; ``unionid: true`` makes one up."""
        body = self.json_body()
        nickname = _text(body, "nickname", max_len=32) if "nickname" in body else "微信用户"
        unionid = body.get("unionid")
        if unionid is True:
            unionid = new_wechat_id()
        elif unionid is not None and not (isinstance(unionid, str) and unionid):
            raise ControlError(400, "bad_input", "请检查填写的内容：unionid", field="unionid")
        user = self.state.create_user(nickname, unionid=unionid or None)
        self.write_json(self.state.user_json(user), 201)


class UserHandler(SandboxHandler):
    def get(self, openid: str) -> None:
        self.write_json(self.state.user_json(self.find_user(openid)))


class UserActionHandler(SandboxHandler):
    """``POST /api/users/{openid}/<action>``: what the user does in WeChat, delivered to ``/wechat``."""

    async def post(self, openid: str, action: str) -> None:
        user = self.find_user(openid)
        if action not in ACTIONS:
            raise ControlError(404, "not_found", "没有这个操作")
        body = self.json_body()
        fields = getattr(self, action)(user, body)
        if fields is None:  # nothing happens in WeChat (already followed, not following)
            self.write_json({"reply": None})
            return
        self.add_to_chat(user, action, body)
        reply: Reply = await self.callback.deliver(user.openid, fields)
        if reply.msgtype is not None:
            self.state.record_chat(user.openid, "reply", reply=reply.content, msgtype=reply.msgtype)
        self.write_json(reply.to_json())

    def add_to_chat(self, user: SimUser, action: str, body: dict[str, Any]) -> None:
        """What the phone shows for the user's own action (opening a page shows nothing)."""
        if action == "text":
            self.state.record_chat(user.openid, "sent", text=str(body["content"]))
        elif action == "click":
            name = self.state.menu_item_name(user, str(body["key"])) or str(body["key"])
            self.state.record_chat(user.openid, "note", text=f"点击菜单：{name}")
        elif action == "scan":
            self.state.record_chat(user.openid, "note", text=f"扫描二维码：{str(body['scene']).strip()}")
        elif action in ("follow", "unfollow"):
            self.state.record_chat(user.openid, "note", text="你关注了公众号" if action == "follow" else "你取消了关注")

    def follow(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int] | None:
        if user.subscribed:
            return None
        self.state.subscribe(user)
        return {"MsgType": "event", "Event": "subscribe", "EventKey": ""}

    def unfollow(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int] | None:
        if not user.subscribed:
            return None
        self.state.unsubscribe(user)
        return {"MsgType": "event", "Event": "unsubscribe", "EventKey": ""}

    def scan(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int]:
        """A parametric QR code: follows with ``qrscene_<scene>``, or ``SCAN`` when already following."""
        scene = _text(body, "scene", max_len=64).strip()
        ticket = self.state.qr_tickets.get(scene) or "gQ" + secrets.token_urlsafe(60)
        if user.subscribed:
            self.state.touch(user)
            return {"MsgType": "event", "Event": "SCAN", "EventKey": scene, "Ticket": ticket}
        self.state.subscribe(user, scene=scene)
        return {"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_" + scene, "Ticket": ticket}

    def _following(self, user: SimUser) -> None:
        if not user.subscribed:
            raise ControlError(409, "not_subscribed", "请先关注公众号，再发消息或点菜单")
        self.state.touch(user)

    def text(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int]:
        content = _text(body, "content")
        self._following(user)
        return {"MsgType": "text", "Content": content, "MsgId": self.state.next_msgid()}

    def click(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int]:
        key = _text(body, "key", max_len=128)
        self._following(user)
        return {"MsgType": "event", "Event": "CLICK", "EventKey": key}

    def view(self, user: SimUser, body: dict[str, Any]) -> dict[str, str | int]:
        url = _text(body, "url", max_len=1024)
        self._following(user)
        menu = self.state.menu_for(user)
        return {"MsgType": "event", "Event": "VIEW", "EventKey": url, "MenuId": menu.menuid if menu else 0}


class UserOAuthCodeHandler(SandboxHandler):
    def post(self, openid: str) -> None:
        """What consent on the authorize page yields: ``{"code"}`` (``{"scope"}`` optional)."""
        user = self.find_user(openid)
        scope = self.json_body().get("scope", "snsapi_base")
        if scope not in ("snsapi_base", "snsapi_userinfo"):
            raise ControlError(400, "bad_input", "请检查填写的内容：scope", field="scope")
        self.write_json({"code": self.state.issue_code("oauth", user, scope=scope).code})


class UserMpCodeHandler(SandboxHandler):
    def post(self, openid: str) -> None:
        """A mini-program ``wx.login`` code for this person: ``{"code"}``."""
        self.write_json({"code": self.state.issue_code("mp", self.find_user(openid)).code})


class UserMessagesHandler(SandboxHandler):
    def get(self, openid: str) -> None:
        """Template and customer-service messages pushed to this user, newest first."""
        user = self.find_user(openid)
        self.write_json([m.to_json() for m in self.state.messages_for(user.openid)])


class UserChatHandler(SandboxHandler):
    def get(self, openid: str) -> None:
        """The phone's chat with the account, in order: ``{"entries": [{"seq", "at", "kind", …}]}``;
        ``?after=<seq>`` for the newer ones only. ``kind``: ``sent`` (``text``), ``note``
        (``text``), ``reply`` (``reply`` and, when not text, ``msgtype``) or ``push``
        (``message``, as ``/messages`` shows it)."""
        user = self.find_user(openid)
        after = self.get_query_argument("after", "0")
        if not after.isdigit() or len(after) > 18:
            raise ControlError(400, "bad_input", "请检查填写的内容：after", field="after")
        self.write_json({"entries": self.state.chat_for(user.openid, int(after))})


class UserMenuHandler(SandboxHandler):
    def get(self, openid: str) -> None:
        """The menu this user sees (a conditional menu for their tags, else the default)."""
        menu = self.state.menu_for(self.find_user(openid))
        self.write_json({"menu": menu.to_json() if menu else None})


class MenuHandler(SandboxHandler):
    def get(self) -> None:
        """The menus last created: ``{"menu", "conditionalmenu"}`` as cgi-bin/menu/get shows them."""
        self.write_json({"conditionalmenu": [], **menus_json(self.state)})


class SmsHandler(SandboxHandler):
    """The SMS inbox: the console SMS provider posts here; newest first, per phone or all."""

    def get(self) -> None:
        phone = self.get_query_argument("phone", "").strip()
        self.write_json([s.to_json() for s in self.state.sms_for(phone)])

    def post(self) -> None:
        body = self.json_body()
        sms = self.state.record_sms(_text(body, "phone", max_len=32).strip(), _text(body, "text", max_len=1000))
        self.write_json(sms.to_json(), 201)


class FaultsHandler(SandboxHandler):
    """``{"api", "errcode", "count", "latency_ms"}``: the next ``count`` calls to ``api`` wait and/or
    fail; ``count`` 0 = until ``DELETE /api/faults`` (``?api=`` clears one)."""

    def get(self) -> None:
        self.write_json({"faults": [f.to_json() for f in self.state.faults.values()]})

    def post(self) -> None:
        body = self.json_body()
        api = _text(body, "api", max_len=128).strip("/ ")
        if api not in FAULTABLE:
            raise ControlError(400, "bad_input", f"沙箱没有这个接口：{api}", field="api")
        errcode = body.get("errcode", 0)
        if isinstance(errcode, bool) or not isinstance(errcode, int):
            raise ControlError(400, "bad_input", "请检查填写的内容：errcode", field="errcode")
        latency_ms = _int(body, "latency_ms", 0)
        if not errcode and not latency_ms:
            raise ControlError(400, "bad_input", "errcode 与 latency_ms 至少填一项", field="errcode")
        fault = self.state.set_fault(api, errcode=errcode, count=_int(body, "count", 1), latency_ms=latency_ms)
        self.write_json(fault.to_json(), 201)

    def delete(self) -> None:
        api = self.get_query_argument("api", "").strip("/ ")
        if api:
            self.state.faults.pop(api, None)
        else:
            self.state.faults.clear()
        self.get()


class CallsHandler(SandboxHandler):
    """``GET``: the platform calls received since the start (or the last ``DELETE``), by path —
    every call, a repeated ``client_msg_id`` included."""

    def get(self) -> None:
        self.write_json({"calls": dict(self.state.calls)})

    def delete(self) -> None:
        self.state.calls.clear()
        self.get()
