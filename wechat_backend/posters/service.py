"""Posters for the 工作台: the institutions a staff member may print for, and one poster file.

Scope: institution staff their own institution, county staff their county's, city staff all
(``scope.covers``); anything else, like an unknown code, is the same 404. The first download of an
institution's poster asks WeChat for its code (:func:`.qr.ensure_code`); each download is audited
(``poster_download``, no archive, the institution and format in ``detail``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..config import Settings
from ..errors import AppError, NotFound, Unavailable
from ..staff.scope import StaffMember, covers
from ..wechat.api import WeChatApi, WeChatApiError, WeChatError
from . import qr
from .layout import Poster
from .render import INSTALL_FONT_HINT, find_cjk_font, render_pdf, render_png

FORMATS = {"png": "image/png", "pdf": "application/pdf"}


class NoFont(AppError):
    code, status, message = "unavailable", 503, INSTALL_FONT_HINT + "。现在可以先下载 PDF 版。"


@dataclass(frozen=True)
class PosterFile:
    filename: str
    content_type: str
    body: bytes


def account_name(settings: Settings) -> str:
    """What the poster calls the account: ``[wechat] account_name``, else ``[service] name``."""
    return settings.wechat.account_name or settings.service.name


def poster_for(settings: Settings, institution: qr.InstitutionView, url: str) -> Poster:
    """The institution's poster; without a phone of its own, the city's (``[service] consult_phone``)."""
    phone = institution.consult_phone or settings.service.consult_phone
    return Poster(account_name(settings), institution.name, phone, url)


# 48001 api unauthorized: only a certified service account (已认证的服务号) may create parametric QR codes.
NO_QR_PERMISSION = "公众号没有生成带参数二维码的权限（错误码 48001）：这需要已完成微信认证的服务号"


def lacks_qr_permission(exc: WeChatError) -> bool:
    return isinstance(exc, WeChatApiError) and exc.errcode == 48001


class PosterService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], wechat: WeChatApi, settings: Settings) -> None:
        self._sessions = sessions
        self._wechat = wechat
        self._settings = settings

    @property
    def png_available(self) -> bool:
        return find_cjk_font() is not None

    async def list_for(self, member: StaffMember) -> list[qr.InstitutionView]:
        county = member.county_code if member.role == "county" else None
        async with self._sessions() as s:
            rows = await qr.institutions(
                s, county_code=county, code=member.institution_code if member.role == "institution" else None
            )
        return [r for r in rows if covers(member, r.county_code, r.code)]

    async def download(
        self, member: StaffMember, code: str, fmt: str, *, request_id: str | None = None, client_ip: str | None = None
    ) -> PosterFile:
        """One poster file of an institution in the member's scope (else 404)."""
        if fmt not in FORMATS:
            raise NotFound()
        async with self._sessions() as s:
            found = await qr.institutions(s, code=code)
        if not found or not covers(member, found[0].county_code, found[0].code):
            raise NotFound()
        font = find_cjk_font()
        if fmt == "png" and font is None:
            raise NoFont()
        try:
            stored = await qr.ensure_code(self._sessions, self._wechat, code)
        except WeChatError as exc:
            if lacks_qr_permission(exc):
                raise Unavailable(f"{NO_QR_PERMISSION}。请联系市级管理员。") from None
            raise Unavailable("暂时无法向微信申请二维码，请稍后再试。") from None
        poster = poster_for(self._settings, found[0], stored.url)
        if fmt == "png" and font is not None:
            body = await asyncio.to_thread(render_png, poster, font)
        else:
            body = await asyncio.to_thread(render_pdf, poster, font)
        async with self._sessions.begin() as s:
            audit.record(
                s,
                actor_type="staff",
                actor_id=member.actor_id,
                action="poster_download",
                request_id=request_id,
                client_ip=client_ip,
                detail={"institution": code, "format": fmt},
            )
        return PosterFile(f"{code}.{fmt}", FORMATS[fmt], body)
