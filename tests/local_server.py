"""A Tornado application on an ephemeral 127.0.0.1 port, for tests and the local doubles.

``serving(app)`` yields the base URL. ``listening()`` binds the port first and serves later, for
apps whose settings must name their own address (the live app, whose sandbox is its WeChat).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from socket import socket

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application


class Listener:
    def __init__(self, sockets: list[socket]) -> None:
        self._sockets = sockets
        self._server: HTTPServer | None = None
        self.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"

    def serve(self, app: Application) -> None:
        self._server = HTTPServer(app)
        self._server.add_sockets(self._sockets)

    async def close(self) -> None:
        """Stop accepting and drop open connections (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()
        else:
            for sock in self._sockets:
                sock.close()
        self._sockets = []


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener(bind_sockets(0, "127.0.0.1"))
    try:
        yield listener
    finally:
        await listener.close()


@asynccontextmanager
async def serving(app: Application) -> AsyncIterator[str]:
    async with listening() as listener:
        listener.serve(app)
        yield listener.base
