"""Telling an archive's owner that another WeChat bound it: the outbox row is written with the
binding, and sent right after the commit; if that fails the row stays ``pending`` for the worker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..config import Settings
from ..db.models import Notification
from ..wechat.api import WeChatApi, WeChatApiError
from .rules import RELATION_LABELS

TEXT = "您的健康档案刚刚被另一个微信以“{relation}”关系绑定。如不是您或家人本人操作，请点菜单“我的档案”查看并解除。"


def binding_notice(
    settings: Settings, api: WeChatApi, sessions: async_sessionmaker[AsyncSession], now: Callable[[], dt.datetime]
) -> Callable[[Notification, str, str], Awaitable[None]]:
    """``notify(row, openid)`` for :class:`~wechat_backend.binding.BindingService`. No name, no
    archive details: only that a binding happened, the relation, the date and a link."""
    spec = settings.templates.binding_added
    home = f"{settings.server.public_base_url.rstrip('/')}/r/home"

    async def notify(row: Notification, openid: str, relation_code: str) -> None:
        relation = RELATION_LABELS.get(relation_code, "家人")
        sent, errcode = False, None
        try:
            if spec.template_id:
                values = {"kind": f"家人绑定（{relation}）", "date": now().date().isoformat()}
                data = {field: values.get(source, "") for field, source in spec.fields.items()}
                await api.send_template(openid, spec.template_id, data, url=home)
            else:
                await api.send_custom_text(openid, TEXT.format(relation=relation) + f"\n{home}")
            sent = True
        except WeChatApiError as exc:
            errcode = exc.errcode
            raise
        finally:
            async with sessions.begin() as s:
                await s.execute(
                    update(Notification)
                    .where(Notification.id == row.id)
                    .values(
                        status="sent" if sent else "pending",
                        sent_at=now() if sent else None,
                        attempts=Notification.attempts + 1,
                        last_errcode=errcode,
                    )
                )

    return notify
