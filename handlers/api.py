"""Resident JSON API (mini-program, and the same routes for official-account pages with the session
cookie). Shapes and error codes are in DESIGN.md; ``/api/v1/openapi.json`` documents them."""

from __future__ import annotations

from typing import Any

from tornado.web import url

from wechat_backend.errors import Unavailable

from .base import BaseHandler, public
from .openapi import OPENAPI

ID = r"([0-9A-Za-z_-]{1,24})"


class ApiHandler(BaseHandler):
    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(data if isinstance(data, dict) else {"items": data})


class MpLoginHandler(ApiHandler):
    xsrf_exempt = True  # the mini-program has no cookie; the WeChat login code is the proof

    @public
    async def post(self) -> None:
        login = self.services.mp_login
        if login is None:
            raise Unavailable()
        token = await login.login(self.json_body().get("code"))
        self.write_json({"token": token, "expires_in": self.services.settings.session.idle_minutes * 60})


class ConsentHandler(ApiHandler):
    @public
    async def get(self) -> None:
        notice = self.services.consent.notice()
        if self.current_user is not None and self.current_user.kind == "resident":
            notice["agreed"] = await self.services.consent.has_agreed(self.caller.identity_id)
        self.write_json(notice)

    async def post(self) -> None:
        version = self.json_body().get("version")
        await self.services.consent.agree(self.caller.identity_id, str(version or ""), request_id=self.request_id)
        self.write_json({"version": version, "agreed": True})


class BindStartHandler(ApiHandler):
    async def post(self) -> None:
        self.write_json(await self.services.binding.start_from(self.caller, self.json_body()), 201)


class BindResendHandler(ApiHandler):
    async def post(self) -> None:
        bind_id = self.json_body().get("bind_id")
        self.write_json(await self.services.binding.resend(self.caller, bind_id))


class BindVerifyHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        bound = await self.services.binding.verify(self.caller, body.get("bind_id"), body.get("code"))
        await self.renew_session()
        self.write_json(bound)


class LogoutHandler(ApiHandler):
    @public  # logged out already is logged out: 204 all the same
    async def post(self) -> None:
        await self.end_session()
        self.set_status(204)
        self.finish()


class ArchivesHandler(ApiHandler):
    async def get(self) -> None:
        self.write_json({"archives": await self.services.bound.list(self.caller)})


class ArchiveBindingsHandler(ApiHandler):
    async def get(self, archive_id: str) -> None:
        self.write_json({"bindings": await self.services.bound.bindings_of(self.caller, archive_id)})


class BindingHandler(ApiHandler):
    async def delete(self, binding_id: str) -> None:
        await self.services.bound.unbind(self.caller, binding_id)
        self.set_status(204)
        self.finish()


class OpenApiHandler(ApiHandler):
    @public
    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(OPENAPI)


routes = [
    url(r"/api/v1/mp/login", MpLoginHandler, name="api_mp_login"),
    url(r"/api/v1/consent", ConsentHandler, name="api_consent"),
    url(r"/api/v1/bind/start", BindStartHandler, name="api_bind_start"),
    url(r"/api/v1/bind/resend", BindResendHandler, name="api_bind_resend"),
    url(r"/api/v1/bind/verify", BindVerifyHandler, name="api_bind_verify"),
    url(r"/api/v1/logout", LogoutHandler, name="api_logout"),
    url(r"/api/v1/archives", ArchivesHandler, name="api_archives"),
    url(rf"/api/v1/archives/{ID}/bindings", ArchiveBindingsHandler, name="api_archive_bindings"),
    url(rf"/api/v1/bindings/{ID}", BindingHandler, name="api_binding"),
    url(r"/api/v1/openapi.json", OpenApiHandler, name="api_openapi"),
]
