"""Telling an archive's owner that another WeChat bound it. The outbox row is written with the
binding and sent right after the commit; what does not go out then, the worker sends
(:mod:`wechat_backend.notify`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ..clock import LOCAL_ZONE
from ..config import Settings
from ..notify.kinds import BINDING_ADDED
from ..notify.message import fit
from ..notify.outbox import Send
from ..wechat.api import WeChatApi
from .rules import RELATION_LABELS

KIND = BINDING_ADDED
TEXT = "您的健康档案刚刚被另一个微信以“{relation}”关系绑定。如不是您或家人本人操作，请点菜单“我的档案”查看并解除。"


def binding_added_sender(settings: Settings, api: WeChatApi, now: Callable[[], dt.datetime]) -> Send:
    """Sends a ``binding_added`` push (payload ``{"relation": code}``): the template message when
    ``[templates.binding_added]`` is set, else a customer-service text. No name, no archive
    details: only that a binding happened, the relation, the date and a link."""
    spec = settings.templates.binding_added
    home = f"{settings.server.public_base_url.rstrip('/')}/r/home"

    async def send(openid: str, payload: Mapping[str, Any], msg_id: str) -> int | None:
        relation = RELATION_LABELS.get(str(payload.get("relation")), "家人")
        if spec.template_id:
            day = now().astimezone(LOCAL_ZONE).date()  # the date as the owner reads it, in China
            values = {"kind": f"家人绑定（{relation}）", "date": f"{day.year}年{day.month}月{day.day}日"}
            data = {field: fit(values.get(source, "")) for field, source in spec.fields.items()}
            return await api.send_template(openid, spec.template_id, data, url=home, client_msg_id=msg_id)
        await api.send_custom_text(openid, TEXT.format(relation=relation) + f"\n{home}")
        return None

    return send
