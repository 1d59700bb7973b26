"""``/wechat``: the WeChat server's callback. Authenticated by its signature, not by cookies."""

from __future__ import annotations

from tornado.web import url

from .base import BaseHandler, public


class WeChatCallbackHandler(BaseHandler):
    """GET: the URL check (echo ``echostr``); POST: messages and events, answered within 5 s."""

    def check_xsrf_cookie(self) -> None:
        """WeChat sends no cookies; ``signature`` / ``msg_signature`` prove the sender instead."""

    def _query(self) -> dict[str, str]:
        return {name: self.get_query_argument(name, strip=False) for name in self.request.query_arguments}

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
