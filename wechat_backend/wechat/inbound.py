"""A push's fields, once checked and decrypted, as a wechatpy message, a dedupe id and a log label.

Pure, no I/O: :mod:`.callback` parses the body once with :mod:`.xml_guard` and hands the flat
fields here, so wechatpy never parses a body itself.

- 接收普通消息: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
- 接收事件推送: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage

from ..errors import BadInput

_LOG_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def dedup_id(fields: Mapping[str, str]) -> str:
    """Messages by MsgId (and sender); events by FromUserName + CreateTime + Event (+ EventKey, so
    two menu clicks in one second stay two). Hashed: no openid in a Redis key."""
    sender = fields.get("FromUserName", "")
    if msg_id := fields.get("MsgId"):
        raw = f"m|{msg_id}|{sender}"
    else:
        raw = f"e|{sender}|{fields.get('CreateTime', '')}|{fields.get('Event', '')}|{fields.get('EventKey', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class Label:
    """How a message is named in the log: types and a hash prefix, no personal data. Built lazily."""

    __slots__ = ("_did", "_fields")

    def __init__(self, fields: Mapping[str, str], did: str) -> None:
        self._fields, self._did = fields, did

    def __str__(self) -> str:
        msg_type, event = self._fields.get("MsgType", ""), self._fields.get("Event", "-")
        return f"{_word(msg_type)}/{_word(event)} ref={self._did[:8]}"


def _word(value: str) -> str:
    """A MsgType or Event as it may appear in a log line."""
    return _LOG_UNSAFE.sub("?", value)[:32]


def to_message(fields: dict[str, str]) -> BaseMessage:
    """wechatpy's message object from fields that passed the guard, picked as ``parse_message`` does."""
    for name in ("MsgType", "FromUserName"):
        if not fields.get(name):
            raise BadInput(name)
    created = fields.get("CreateTime", "")
    if not (created.isascii() and created.isdigit()):
        raise BadInput("CreateTime")
    msg_type = fields["MsgType"].lower()
    if msg_type != "event":
        return MESSAGE_TYPES.get(msg_type, UnknownMessage)(fields)
    event, event_key = fields.get("Event", "").lower(), fields.get("EventKey", "")
    if event == "subscribe" and event_key.startswith(("scanbarcode|", "scanimage|")):
        event = "subscribe_scan_product"
    elif event == "subscribe" and event_key.startswith("qrscene_"):
        event = "subscribe_scan"
        fields = {**fields, "EventKey": event_key[len("qrscene_") :]}
    return EVENT_TYPES.get(event, UnknownMessage)(fields)
