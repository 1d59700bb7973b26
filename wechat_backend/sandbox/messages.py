"""Pushes the backend sends: template messages and customer-service messages, recorded per openid.

- 模板消息: https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage.html
- 客服消息: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
"""

from __future__ import annotations

from typing import Any

from .calls import OK, Api, PlatformCall, PlatformError, text_field
from .state import SandboxState, SimUser

CLIENT_MSG_ID_WINDOW = 600  # one message per openid + client_msg_id within 10 minutes
SERVICE_WINDOW = 48 * 3600  # customer-service messages need an interaction in the last 48 hours
CUSTOM_TYPES = {
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
}


def _recipient(state: SandboxState, body: dict[str, Any]) -> SimUser:
    user = state.users.get(str(body.get("touser") or ""))
    if user is None:
        raise PlatformError(40003)
    return user


def send_template(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/message/template/send → ``{"errcode": 0, "errmsg": "ok", "msgid": …}``."""
    body = call.json()
    user = _recipient(state, body)
    template_id = text_field(body, "template_id", 40037)
    data = body.get("data", {})
    url = body.get("url")
    miniprogram = body.get("miniprogram")
    if (
        not isinstance(data, dict)
        or (url is not None and not isinstance(url, str))
        or (miniprogram is not None and not isinstance(miniprogram, dict))
    ):
        raise PlatformError(47001)
    if not user.subscribed:
        raise PlatformError(43004)
    client_msg_id = body.get("client_msg_id")
    if client_msg_id:
        earlier = next(
            (
                m
                for m in state.messages_for(user.openid)
                if m.client_msg_id == client_msg_id and state.now() - m.at < CLIENT_MSG_ID_WINDOW
            ),
            None,
        )
        if earlier is not None:
            return {**OK, "msgid": earlier.msgid}
    msg = state.record_message(
        user.openid,
        "template",
        template_id=template_id,
        data=data,
        url=url or None,
        miniprogram=miniprogram,
        client_msg_id=str(client_msg_id) if client_msg_id else None,
    )
    return {**OK, "msgid": msg.msgid}


def send_custom(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/message/custom/send: only to a follower who interacted in the last 48 hours (45015)."""
    body = call.json()
    user = _recipient(state, body)
    msgtype = body.get("msgtype")
    if msgtype not in CUSTOM_TYPES:
        raise PlatformError(40008)
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        raise PlatformError(47001, msgtype)
    last = user.last_interaction
    if not user.subscribed or last is None or state.now() - last > SERVICE_WINDOW:
        raise PlatformError(45015)
    if msgtype == "text":
        state.record_message(user.openid, "custom", msgtype="text", text=text_field(payload, "content"))
    else:
        articles = payload.get("articles") if msgtype == "news" else None
        url = articles[0].get("url") if isinstance(articles, list) and articles else None
        state.record_message(user.openid, "custom", msgtype=msgtype, data=payload, url=url)
    return dict(OK)


APIS = {
    "cgi-bin/message/template/send": Api(send_template),
    "cgi-bin/message/custom/send": Api(send_custom),
}
