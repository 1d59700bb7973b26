"""The official account's menu: the default one for everyone and a conditional one for staff.

自定义菜单 https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Creating_Custom-Defined_Menu.html
个性化菜单 https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Personalized_menu_interface.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Settings
from . import replies
from .api import WeChatApi


def _default_buttons(base: str) -> list[dict[str, Any]]:
    return [
        {"type": "view", "name": "我的档案", "url": f"{base}/r/home"},
        {"type": "click", "name": "随访提醒", "key": replies.FOLLOWUP},
        {
            "name": "服务",
            "sub_button": [
                {"type": "click", "name": "绑定档案", "key": replies.BIND},
                {"type": "click", "name": "留言咨询", "key": replies.FEEDBACK},
                {"type": "click", "name": "使用帮助", "key": replies.HELP},
            ],
        },
    ]


def _staff_buttons(base: str) -> list[dict[str, Any]]:
    # Straight to the staff login: it logs a linked member with a fresh SMS code in at once.
    login = f"{base}/staff/login?next=/staff/"
    return [*_default_buttons(base)[:2], {"type": "view", "name": "工作台", "url": login}]


def _with_base(buttons: Any, base: str) -> Any:
    """Configured menus may write ``{base}`` in a URL for the public address."""
    if isinstance(buttons, list | tuple):
        return [_with_base(b, base) for b in buttons]
    if isinstance(buttons, dict):
        return {k: (v.replace("{base}", base) if k == "url" else _with_base(v, base)) for k, v in buttons.items()}
    return buttons


def menus(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(everyone's menu, staff's menu) from ``[menu]``, or the built-in ones when it is empty."""
    base = settings.server.public_base_url.rstrip("/")
    default = _with_base(list(settings.menu.buttons), base) if settings.menu.buttons else _default_buttons(base)
    staff = _with_base(list(settings.menu.staff_buttons), base) if settings.menu.staff_buttons else _staff_buttons(base)
    return default, staff


@dataclass(frozen=True)
class PushedMenu:
    buttons: list[dict[str, Any]]
    staff_buttons: list[dict[str, Any]]
    staff_tag_id: int
    conditional_menu_id: str


async def push_menu(settings: Settings, api: WeChatApi) -> PushedMenu:
    """Create the default menu, make sure the staff tag exists, and add the staff's conditional menu."""
    default, staff = menus(settings)
    await api.create_menu(default)
    tags = {t.get("name"): t.get("id") for t in await api.get_tags()}
    tag_id = tags.get(settings.menu.staff_tag)
    if tag_id is None:
        tag_id = await api.create_tag(settings.menu.staff_tag)
    menu_id = await api.add_conditional_menu(staff, int(tag_id))
    return PushedMenu(default, staff, int(tag_id), menu_id)
