"""Official-account web login: ``/oauth/start?next=PATH`` → WeChat → ``/oauth/callback`` → PATH.

The login is tied to the browser that started it: ``/oauth/start`` sets the signed ``wb_oauth``
cookie, and the callback goes on only when that cookie names the same state (see
:mod:`wechat_backend.wechat.oauth`). A callback without it (a link from someone else, or a WebView
that dropped the cookie) starts the login again once, then asks the person to come in again from
the menu: never a loop through WeChat.
"""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.web import url

from wechat_backend.errors import NotLoggedIn, Unavailable
from wechat_backend.wechat.oauth import STATE_TTL_SECONDS, OAuthService

from .base import BaseHandler, public

OAUTH_COOKIE = "wb_oauth"
OAUTH_COOKIE_PATH = "/oauth/"
# Set on the second try's redirect_uri: a callback that still has no cookie stops there.
AGAIN = "again"


class OAuthBaseHandler(BaseHandler):
    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    @property
    def oauth(self) -> OAuthService:
        if self.services.oauth is None:
            raise Unavailable()
        return self.services.oauth


class OAuthStartHandler(OAuthBaseHandler):
    @public
    def get(self) -> None:
        callback = self.reverse_url("oauth_callback")
        if self.get_query_argument(AGAIN, ""):
            callback += "?" + urlencode({AGAIN: "1"})
        login, authorize_url = self.oauth.start(self.get_query_argument("next", None), callback_path=callback)
        self.set_signed_cookie(
            OAUTH_COOKIE,
            login.cookie_value(),
            expires_days=None,
            max_age=STATE_TTL_SECONDS,
            path=OAUTH_COOKIE_PATH,
            httponly=True,
            secure=self.https,
            samesite="Lax",
        )
        self.redirect(authorize_url)


class OAuthCallbackHandler(OAuthBaseHandler):
    @public
    async def get(self) -> None:
        cookie = self.get_signed_cookie(OAUTH_COOKIE, max_age_days=1)  # freshness: the service's clock
        self.clear_cookie(OAUTH_COOKIE, path=OAUTH_COOKIE_PATH)
        login = self.oauth.matching(cookie, self.get_query_argument("state", ""))
        if login is None:
            if self.get_query_argument(AGAIN, ""):
                raise NotLoggedIn()  # "请从公众号菜单重新进入"
            self.redirect(self.reverse_url("oauth_start") + "?" + urlencode({AGAIN: "1"}))
            return
        done = await self.oauth.finish(
            self.get_query_argument("code", ""),
            login,
            client_ip=self.client_ip,
            previous_session_id=self.current_user.id if self.current_user else None,
        )
        self.set_session_cookie(done.session_id)
        self.redirect(done.next_path)


routes = [
    url(r"/oauth/start", OAuthStartHandler, name="oauth_start"),
    url(r"/oauth/callback", OAuthCallbackHandler, name="oauth_callback"),
]
