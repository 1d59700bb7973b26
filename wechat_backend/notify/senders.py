"""How each kind of push is sent: a template message from ``[templates.<kind>]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import Settings
from ..wechat.api import WeChatApi
from .kinds import BINDING_ADDED, KINDS
from .message import link, template_data
from .outbox import Send


def template_sender(settings: Settings, api: WeChatApi, kind: str) -> Send:
    spec = settings.templates.spec(kind)
    base = settings.server.public_base_url

    async def send(openid: str, payload: Mapping[str, Any], msg_id: str) -> int | None:
        data = template_data(spec, kind, payload)
        return await api.send_template(
            openid, spec.template_id, data, url=link(base, kind, payload), client_msg_id=msg_id
        )

    return send


def senders(settings: Settings, api: WeChatApi, *, binding_added: Send) -> dict[str, Send]:
    """A sender for every kind whose template is configured; ``binding_added`` always (it falls back
    to a customer-service text)."""
    out = {
        k: template_sender(settings, api, k)
        for k in KINDS
        if k != BINDING_ADDED and settings.templates.spec(k).template_id
    }
    out[BINDING_ADDED] = binding_added
    return out


def template_kinds(settings: Settings) -> set[str]:
    """The kinds sent as template messages (what the daily template quota stops)."""
    return {k for k in KINDS if settings.templates.spec(k).template_id}
