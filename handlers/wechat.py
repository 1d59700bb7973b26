"""``/wechat``: the WeChat server's callback. Authenticated by its signature, not by cookies."""

from __future__ import annotations

import secrets

from tornado.web import url

from wechat_backend.errors import NotLoggedIn

from .base import BaseHandler, public


class WeChatCallbackHandler(BaseHandler):
    """GET: the URL check (echo ``echostr``); POST: messages and events, answered within 5 s."""

    async def prepare(self) -> None:
        # WeChat's server sends no cookie and no token: no session to load on every push (the
        # service checks the signature). The request id and deny-by-default stay as in BaseHandler.
        self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-Id", self.request_id)
        if not getattr(getattr(self, self.request.method.lower(), None), "__wb_public__", False):
            raise NotLoggedIn()

    def check_xsrf_cookie(self) -> None:
        """WeChat sends no cookies; ``signature`` / ``msg_signature`` prove the sender instead."""

    def _query(self) -> dict[str, str]:
        # The last value of each name, as get_query_argument gives it, without its per-name cost.
        # Bytes that are not UTF-8 become U+FFFD, which no signature check accepts.
        return {name: values[-1].decode("utf-8", "replace") for name, values in self.request.query_arguments.items()}

    @public
    def get(self) -> None:
        echostr = self.services.callback.echo(self._query())
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(echostr)

    @public
    async def post(self) -> None:
        reply = await self.services.callback.handle(self._query(), self.request.body)
        self.set_header("Content-Type", reply.content_type)
        self.finish(reply.body)


routes = [url(r"/wechat", WeChatCallbackHandler, name="wechat")]
