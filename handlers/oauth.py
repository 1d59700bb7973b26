"""Official-account web login: ``/oauth/start?next=PATH`` → WeChat → ``/oauth/callback`` → PATH."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.errors import Unavailable
from wechat_backend.wechat.oauth import OAuthService

from .base import BaseHandler, public, session_cookie_name


class OAuthBaseHandler(BaseHandler):
    @property
    def oauth(self) -> OAuthService:
        if self.services.oauth is None:
            raise Unavailable()
        return self.services.oauth


class OAuthStartHandler(OAuthBaseHandler):
    @public
    async def get(self) -> None:
        authorize_url = await self.oauth.start(
            self.get_argument("next", None), callback_path=self.reverse_url("oauth_callback")
        )
        self.set_header("Cache-Control", "no-store")
        self.redirect(authorize_url)


class OAuthCallbackHandler(OAuthBaseHandler):
    @public
    async def get(self) -> None:
        login = await self.oauth.finish(
            self.get_argument("code", ""),
            self.get_argument("state", ""),
            previous_session_id=self.current_user.id if self.current_user else None,
        )
        https = self.services.settings.server.public_base_url.startswith("https://")
        # Only the random id goes into the cookie; a browser-session cookie, the server times it out.
        self.set_cookie(
            session_cookie_name(self.services.settings.server.public_base_url),
            login.session_id,
            path="/",
            httponly=True,
            secure=https,
            samesite="Lax",
        )
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.redirect(login.next_path)


routes = [
    url(r"/oauth/start", OAuthStartHandler, name="oauth_start"),
    url(r"/oauth/callback", OAuthCallbackHandler, name="oauth_callback"),
]
