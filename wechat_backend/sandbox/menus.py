"""The custom menu: create, conditional (per-tag) menus, get, delete, trymatch.

- 自定义菜单: https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Creating_Custom-Defined_Menu.html
- 个性化菜单: https://developers.weixin.qq.com/doc/offiaccount/Custom_Menus/Personalized_menu_interface.html
"""

from __future__ import annotations

import copy
from typing import Any

from .calls import OK, Api, PlatformCall, PlatformError
from .state import Menu, SandboxState

NAME_BYTES = {False: 16, True: 60}  # top-level / sub-button
KEY_BYTES = 128
URL_BYTES = 1024
# errcodes for a bad (type, key, url), top-level and sub-button
ERRCODES = {False: (40017, 40019, 40020), True: (40024, 40026, 40027)}
KEYED = ("click", "location_select", "scancode_push", "scancode_waitmsg")
KEYED += ("pic_sysphoto", "pic_photo_or_album", "pic_weixin")
NEEDS = {
    **dict.fromkeys(KEYED, "key"),
    "view": "url",
    "miniprogram": "url",
    "media_id": "media_id",
    "view_limited": "media_id",
    "article_id": "article_id",
    "article_view_limited": "article_id",
}
MATCH_FIELDS = ("tag_id", "sex", "country", "province", "city", "client_platform_type", "language")


def _size(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else -1


def _check_leaf(button: dict[str, Any], sub: bool) -> dict[str, Any]:
    type_code, key_code, url_code = ERRCODES[sub]
    kind = button.get("type")
    if kind not in NEEDS:
        raise PlatformError(type_code)
    needed = NEEDS[kind]
    if needed == "key" and not 0 < _size(button.get("key")) <= KEY_BYTES:
        raise PlatformError(key_code)
    if needed == "url" and not 0 < _size(button.get("url")) <= URL_BYTES:
        raise PlatformError(url_code)
    if kind == "miniprogram" and not (button.get("appid") and button.get("pagepath")):
        raise PlatformError(47001, "miniprogram appid/pagepath")
    if needed not in ("key", "url") and not button.get(needed):
        raise PlatformError(47001, needed)
    return {**button, "sub_button": []}


def check_buttons(buttons: Any) -> list[dict[str, Any]]:
    """The ``button`` list as menu/get will return it (every leaf with an empty ``sub_button``)."""
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise PlatformError(40016)
    out = []
    for button in copy.deepcopy(buttons):
        if not isinstance(button, dict):
            raise PlatformError(47001)
        if not 0 < _size(button.get("name")) <= NAME_BYTES[False]:
            raise PlatformError(40018)
        subs = button.get("sub_button")
        if not subs:
            out.append(_check_leaf(button, sub=False))
            continue
        if not isinstance(subs, list) or len(subs) > 5:
            raise PlatformError(40023)
        checked = []
        for sub in subs:
            if not isinstance(sub, dict):
                raise PlatformError(47001)
            if not 0 < _size(sub.get("name")) <= NAME_BYTES[True]:
                raise PlatformError(40025)
            checked.append(_check_leaf(sub, sub=True))
        out.append({"name": button["name"], "sub_button": checked})
    return out


def create_menu(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/menu/create: replaces the default menu (conditional menus stay)."""
    state.menu = Menu(state.new_menuid(), check_buttons(call.json().get("button")))
    return dict(OK)


def add_conditional(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/menu/addconditional → ``{"menuid": "…"}``; needs a default menu first (65303)."""
    body = call.json()
    buttons = check_buttons(body.get("button"))
    rule = body.get("matchrule")
    if not isinstance(rule, dict) or not any(str(rule.get(f) or "") for f in MATCH_FIELDS):
        raise PlatformError(65304)
    if state.menu is None:
        raise PlatformError(65303)
    menu = Menu(state.new_menuid(), buttons, {k: str(v) for k, v in rule.items() if k in MATCH_FIELDS})
    state.conditional_menus.append(menu)
    return {"menuid": str(menu.menuid)}


def del_conditional(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/menu/delconditional ``{"menuid"}``."""
    menuid = str(call.json().get("menuid") or "")
    kept = [m for m in state.conditional_menus if str(m.menuid) != menuid]
    if len(kept) == len(state.conditional_menus):
        raise PlatformError(65301)
    state.conditional_menus = kept
    return dict(OK)


def delete_menu(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET cgi-bin/menu/delete: removes the default menu and every conditional menu."""
    state.menu = None
    state.conditional_menus = []
    return dict(OK)


def menus_json(state: SandboxState) -> dict[str, Any]:
    """``{"menu": …, "conditionalmenu": [...]}`` as menu/get answers (``conditionalmenu`` only when any)."""
    out: dict[str, Any] = {"menu": state.menu.to_json() if state.menu else None}
    if state.conditional_menus:
        out["conditionalmenu"] = [m.to_json() for m in state.conditional_menus]
    return out


def get_menu(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET cgi-bin/menu/get; 46003 when no menu was created."""
    if state.menu is None:
        raise PlatformError(46003)
    return menus_json(state)


def try_match(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/menu/trymatch ``{"user_id": openid}`` → the buttons that user sees."""
    user = state.users.get(str(call.json().get("user_id") or ""))
    if user is None:
        raise PlatformError(40003)
    menu = state.menu_for(user)
    if menu is None:
        raise PlatformError(46003)
    return {"button": menu.button}


APIS = {
    "cgi-bin/menu/create": Api(create_menu),
    "cgi-bin/menu/addconditional": Api(add_conditional),
    "cgi-bin/menu/delconditional": Api(del_conditional),
    "cgi-bin/menu/delete": Api(delete_menu),
    "cgi-bin/menu/get": Api(get_menu),
    "cgi-bin/menu/trymatch": Api(try_match),
}
