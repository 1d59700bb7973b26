"""The sandbox: a small Tornado app that plays the WeChat platform, so the product runs offline.

Mounted under ``/sandbox`` in the serving process only when ``[sandbox] enabled`` and mode ``demo``
(``wechat_backend.app.make_app``); production code never imports it. Point the backend at it with
``[wechat] api_base_url = open_base_url = "<public_base_url>/sandbox/"``. Its state lives in this
process's memory (``SandboxState``); users, chats, pushes, SMS, menus and tags are also kept in
``<data_dir>/sandbox-state.json`` (``store.py``), so a demo survives a restart. Pieces:

- ``platform.py`` and ``tokens.py``, ``messages.py``, ``menus.py``, ``users.py``: api.weixin.qq.com;
- ``handlers.py``: the handler base, the OAuth authorize page (open.weixin.qq.com) and the phone page;
- ``control.py``: the JSON control API of DESIGN.md; ``callback.py``: WeChat POSTing to our ``/wechat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado.web import RedirectHandler, URLSpec, url

from .callback import CallbackClient
from .control import (
    ACTIONS,
    CallsHandler,
    FaultsHandler,
    MenuHandler,
    SmsHandler,
    UserActionHandler,
    UserChatHandler,
    UserHandler,
    UserMenuHandler,
    UserMessagesHandler,
    UserMpCodeHandler,
    UserOAuthCodeHandler,
    UsersHandler,
)
from .handlers import ApiNotFoundHandler, AuthorizeHandler, PhoneHandler, PlatformHandler
from .state import SandboxState

if TYPE_CHECKING:
    from wechat_backend.clock import Clock
    from wechat_backend.config import Settings

__all__ = ["CallbackClient", "SandboxState", "sandbox_routes"]

USER = r"/sandbox/api/users/([^/]+)"


def sandbox_routes(
    settings: Settings,
    *,
    state: SandboxState | None = None,
    clock: Clock | None = None,
    safe_mode: bool = True,
    callback_url: str | None = None,
) -> list[URLSpec]:
    """The sandbox's routes, all under ``/sandbox`` and named ``sandbox_*``, sharing one state.

    ``safe_mode=False`` sends plaintext messages to ``/wechat``; ``callback_url`` replaces
    ``public_base_url + "/wechat"`` (tests with a stand-in receiver).
    """
    state = state or SandboxState.from_settings(settings, clock=clock)
    callback = CallbackClient.from_settings(
        settings, original_id=state.original_id, now=state.now, url=callback_url, safe_mode=safe_mode
    )
    kw = {"state": state, "callback": callback}
    return [
        url(r"/sandbox", RedirectHandler, {"url": "/sandbox/"}, name="sandbox_root"),
        url(r"/sandbox/", PhoneHandler, kw, name="sandbox_phone"),
        url(r"/sandbox/connect/oauth2/authorize", AuthorizeHandler, kw, name="sandbox_authorize"),
        url(r"/sandbox/((?:cgi-bin|sns)/[A-Za-z0-9_/]+)", PlatformHandler, kw, name="sandbox_platform"),
        url(r"/sandbox/api/users", UsersHandler, kw, name="sandbox_users"),
        url(USER, UserHandler, kw, name="sandbox_user"),
        url(USER + f"/({'|'.join(ACTIONS)})", UserActionHandler, kw, name="sandbox_user_action"),
        url(USER + r"/oauth-code", UserOAuthCodeHandler, kw, name="sandbox_user_oauth_code"),
        url(USER + r"/mp-code", UserMpCodeHandler, kw, name="sandbox_user_mp_code"),
        url(USER + r"/messages", UserMessagesHandler, kw, name="sandbox_user_messages"),
        url(USER + r"/chat", UserChatHandler, kw, name="sandbox_user_chat"),
        url(USER + r"/menu", UserMenuHandler, kw, name="sandbox_user_menu"),
        url(r"/sandbox/api/menu", MenuHandler, kw, name="sandbox_menu"),
        url(r"/sandbox/api/sms", SmsHandler, kw, name="sandbox_sms"),
        url(r"/sandbox/api/faults", FaultsHandler, kw, name="sandbox_faults"),
        url(r"/sandbox/api/calls", CallsHandler, kw, name="sandbox_calls"),
        url(r"/sandbox/api/.*", ApiNotFoundHandler, kw, name="sandbox_api_not_found"),
    ]
