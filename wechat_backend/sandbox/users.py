"""Followers: user tags, user/info, and parametric QR codes (the institutions' posters).

- 用户标签管理: https://developers.weixin.qq.com/doc/offiaccount/User_Management/User_Tag_Management.html
- 获取用户基本信息: https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html
- 生成带参数的二维码: https://developers.weixin.qq.com/doc/offiaccount/Account_Management/Generating_a_Parametric_QR_Code.html
"""

from __future__ import annotations

import secrets
from typing import Any

from .calls import OK, Api, PlatformCall, PlatformError
from .state import SYSTEM_TAGS, SandboxState, SimUser

MAX_TAGS = 100
MAX_TAGS_PER_USER = 20
MAX_TAG_NAME = 30
MAX_BATCH = 50
QR_ACTIONS = {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"}


def _tag_body(call: PlatformCall) -> dict[str, Any]:
    tag = call.json().get("tag")
    if not isinstance(tag, dict):
        raise PlatformError(47001, "tag")
    return tag


def _tag_name(state: SandboxState, name: Any, *, except_id: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise PlatformError(45157)
    if len(name) > MAX_TAG_NAME:
        raise PlatformError(45158)
    if any(n == name and i != except_id for i, n in state.tags.items()):
        raise PlatformError(45157)
    return name


def _tag_id(state: SandboxState, value: Any, *, editable: bool = False) -> int:
    try:
        tag_id = int(value)
    except (TypeError, ValueError):
        raise PlatformError(45159) from None
    if editable and tag_id in SYSTEM_TAGS:
        raise PlatformError(45058)
    if tag_id not in state.tags:
        raise PlatformError(45159)
    return tag_id


def _users(state: SandboxState, openids: Any) -> list[SimUser]:
    if not isinstance(openids, list) or not 1 <= len(openids) <= MAX_BATCH:
        raise PlatformError(40032)
    users = [state.users.get(str(o)) for o in openids]
    if None in users:
        raise PlatformError(40003)
    return [u for u in users if u is not None]


def create_tag(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/tags/create ``{"tag": {"name"}}`` → ``{"tag": {"id", "name"}}``."""
    name = _tag_name(state, _tag_body(call).get("name"))
    if len(state.tags) - len(SYSTEM_TAGS) >= MAX_TAGS:
        raise PlatformError(45056)
    return {"tag": {"id": state.create_tag(name), "name": name}}


def get_tags(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET cgi-bin/tags/get → ``{"tags": [{"id", "name", "count"}]}``."""
    return {"tags": [{"id": i, "name": n, "count": len(state.tag_members(i))} for i, n in state.tags.items()]}


def update_tag(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    tag = _tag_body(call)
    tag_id = _tag_id(state, tag.get("id"), editable=True)
    state.tags[tag_id] = _tag_name(state, tag.get("name"), except_id=tag_id)
    return dict(OK)


def delete_tag(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    tag_id = _tag_id(state, _tag_body(call).get("id"), editable=True)
    del state.tags[tag_id]
    for user in state.tag_members(tag_id):
        user.tag_ids.remove(tag_id)
    return dict(OK)


def batch_tagging(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/tags/members/batchtagging ``{"openid_list", "tagid"}``."""
    body = call.json()
    tag_id = _tag_id(state, body.get("tagid"))
    users = _users(state, body.get("openid_list"))
    if any(tag_id not in u.tag_ids and len(u.tag_ids) >= MAX_TAGS_PER_USER for u in users):
        raise PlatformError(45059)
    for user in users:
        if tag_id not in user.tag_ids:
            user.tag_ids.append(tag_id)
    return dict(OK)


def batch_untagging(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    body = call.json()
    tag_id = _tag_id(state, body.get("tagid"))
    for user in _users(state, body.get("openid_list")):
        if tag_id in user.tag_ids:
            user.tag_ids.remove(tag_id)
    return dict(OK)


def tags_of_user(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/tags/getidlist ``{"openid"}`` → ``{"tagid_list": [...]}``."""
    (user,) = _users(state, [call.json().get("openid")])
    return {"tagid_list": list(user.tag_ids)}


def users_of_tag(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """cgi-bin/user/tag/get ``{"tagid", "next_openid"}`` → ``{"count", "data": {"openid"}, "next_openid"}``."""
    body = call.json()
    tag_id = _tag_id(state, body.get("tagid"))
    openids = [u.openid for u in state.tag_members(tag_id)]
    after = str(body.get("next_openid") or "")
    if after in openids:
        openids = openids[openids.index(after) + 1 :]
    if not openids:
        return {"count": 0, "next_openid": ""}
    return {"count": len(openids), "data": {"openid": openids}, "next_openid": openids[-1]}


def user_info(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """GET cgi-bin/user/info?openid=… (a follower's subscribe state, tags and subscribe scene)."""
    user = state.users.get(call.arg("openid"))
    if user is None:
        raise PlatformError(40003)
    if not user.subscribed:
        return {"subscribe": 0, "openid": user.openid}
    out: dict[str, Any] = {
        "subscribe": 1,
        "openid": user.openid,
        "language": call.arg("lang") or "zh_CN",
        "subscribe_time": user.subscribe_time,
        "remark": "",
        "groupid": 0,
        "tagid_list": list(user.tag_ids),
        "subscribe_scene": user.subscribe_scene,
        "qr_scene": int(user.qr_scene) if user.qr_scene.isdigit() else 0,
        "qr_scene_str": "" if user.qr_scene.isdigit() else user.qr_scene,
    }
    if user.unionid:
        out["unionid"] = user.unionid
    return out


def create_qrcode(state: SandboxState, call: PlatformCall) -> dict[str, Any]:
    """POST cgi-bin/qrcode/create → ``{"ticket", "expire_seconds", "url"}``; scanning it in the phone
    page (or ``POST /api/users/{openid}/scan``) sends the scene."""
    body = call.json()
    action = body.get("action_name")
    scene = (body.get("action_info") or {}).get("scene") if isinstance(body.get("action_info"), dict) else None
    if action not in QR_ACTIONS or not isinstance(scene, dict):
        raise PlatformError(40097)
    value = scene.get("scene_str") if "STR" in action else scene.get("scene_id")
    if value in (None, ""):
        raise PlatformError(40097, "scene")
    ticket = "gQ" + secrets.token_urlsafe(60)
    state.qr_tickets[str(value)] = ticket
    out: dict[str, Any] = {"ticket": ticket, "url": "http://weixin.qq.com/q/" + secrets.token_urlsafe(16)}
    if not action.startswith("QR_LIMIT"):
        seconds = body.get("expire_seconds", 60)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise PlatformError(40097, "expire_seconds")
        out["expire_seconds"] = min(seconds, 2592000)
    return out


APIS = {
    "cgi-bin/tags/create": Api(create_tag),
    "cgi-bin/tags/get": Api(get_tags),
    "cgi-bin/tags/update": Api(update_tag),
    "cgi-bin/tags/delete": Api(delete_tag),
    "cgi-bin/tags/members/batchtagging": Api(batch_tagging),
    "cgi-bin/tags/members/batchuntagging": Api(batch_untagging),
    "cgi-bin/tags/getidlist": Api(tags_of_user),
    "cgi-bin/user/tag/get": Api(users_of_tag),
    "cgi-bin/user/info": Api(user_info),
    "cgi-bin/qrcode/create": Api(create_qrcode),
}
