"""WeChat calling our server: a message or event POSTed to ``/wechat`` as the platform does it.

The query carries ``signature``, ``timestamp``, ``nonce`` and ``openid``; in safe mode (the default)
also ``encrypt_type=aes`` and ``msg_signature``, with the body ``<xml><ToUserName/><Encrypt/></xml>``
made by wechatpy's ``WeChatCrypto``. The reply is checked (signature, appid, addressee) and decrypted
as WeChat would; ``success`` or an empty body means "no reply".
接收普通消息: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
消息加解密: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
"""

from __future__ import annotations

import secrets
import struct
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xmltodict
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import WeChatSigner

if TYPE_CHECKING:
    from wechat_backend.config import Settings

DEADLINE_SECONDS = 5.0  # WeChat gives up on a reply after 5 seconds
NO_SERVICE = "该公众号暂时无法提供服务，请稍后再试"
ENVELOPE_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType")


class CallbackError(Exception):
    """Our ``/wechat`` could not be reached or answered in a way WeChat would not accept."""

    def __init__(self, code: str, message: str, *, status: int = 502) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(code)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class Reply:
    """The passive reply: ``msgtype`` None for ``success``/empty; ``content`` the text, or the fields."""

    msgtype: str | None
    content: Any

    def to_json(self) -> dict[str, Any]:
        out = {"reply": self.content}
        if self.msgtype not in (None, "text"):
            out["msgtype"] = self.msgtype
        return out


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: dict[str, str | int]) -> str:
    """A WeChat message body: strings in CDATA, numbers bare, in the given order."""
    parts = [f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items()]
    return "<xml>" + "".join(parts) + "</xml>"


def signature(*values: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*values)
    return signer.signature


class CallbackClient:
    """POSTs messages and events for one official account to ``url`` (our ``/wechat``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        encoding_aes_key: str,
        app_id: str,
        original_id: str,
        now: Callable[[], float],
        safe_mode: bool = True,
        timeout: float = DEADLINE_SECONDS,
    ) -> None:
        self.url = url
        self.token = token
        self.app_id = app_id
        self.original_id = original_id
        self.safe_mode = safe_mode
        self.timeout = timeout
        self._crypto = WeChatCrypto(token, encoding_aes_key, app_id) if safe_mode else None
        self._now = now
        self._last_create_time = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, original_id: str, now: Callable[[], float], url: str | None = None, **kw: Any
    ) -> CallbackClient:
        w = settings.wechat
        return cls(
            url or settings.server.public_base_url.rstrip("/") + "/wechat",
            token=w.token,
            encoding_aes_key=w.encoding_aes_key,
            app_id=w.app_id,
            original_id=original_id,
            now=now,
            **kw,
        )

    def _create_time(self) -> int:
        # Strictly increasing, so two events of one user never share the FromUserName + CreateTime
        # that WeChat's own retries share (the backend deduplicates on it).
        self._last_create_time = max(int(self._now()), self._last_create_time + 1)
        return self._last_create_time

    def envelope(self, openid: str, fields: dict[str, str | int]) -> tuple[dict[str, str], str]:
        """The query string and body WeChat would send for this message."""
        create_time = self._create_time()
        message = to_xml({"ToUserName": self.original_id, "FromUserName": openid, "CreateTime": create_time, **fields})
        timestamp, nonce = str(int(self._now())), str(secrets.randbelow(10**10))
        query = {"signature": signature(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        query["openid"] = openid
        if self._crypto is None:
            return query, message
        sealed = xmltodict.parse(self._crypto.encrypt_message(message, nonce, timestamp))["xml"]
        query |= {"encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]}
        body = to_xml({"ToUserName": self.original_id, "Encrypt": sealed["Encrypt"]})
        return query, body

    async def deliver(self, openid: str, fields: dict[str, str | int]) -> Reply:
        """Send one message or event from ``openid``; the reply as the user would see it."""
        query, body = self.envelope(openid, fields)
        request = HTTPRequest(
            self.url + "?" + urllib.parse.urlencode(query),
            method="POST",
            body=body.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "User-Agent": "Mozilla/4.0 (sandbox)"},
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except HTTPTimeoutError:
            late = f"{NO_SERVICE}（{self.url} 未在 {self.timeout:g} 秒内回复）"
            raise CallbackError("timeout", late, status=504) from None
        except (OSError, HTTPClientError):
            raise CallbackError("unavailable", f"{NO_SERVICE}（无法连接 {self.url}）") from None
        if response.code != 200:
            raise CallbackError("bad_reply", f"{NO_SERVICE}（{self.url} 返回 HTTP {response.code}）")
        return self.read_reply(openid, response.body or b"")

    def read_reply(self, openid: str, raw: bytes) -> Reply:
        text = raw.decode("utf-8", errors="replace").strip()
        if text in ("", "success"):
            return Reply(None, None)
        try:
            outer = xmltodict.parse(text)["xml"]
            if "Encrypt" in outer and self._crypto is not None:
                text = self._crypto.decrypt_message(
                    outer, outer.get("MsgSignature"), outer.get("TimeStamp"), outer.get("Nonce")
                )
            elif self._crypto is not None:
                raise CallbackError("bad_reply", f"{NO_SERVICE}（安全模式下回复未加密）")
            inner = xmltodict.parse(text, force_list=("item",))["xml"]
        except (InvalidSignatureException, InvalidAppIdException):
            raise CallbackError("bad_reply", f"{NO_SERVICE}（回复的签名或 AppID 不正确）") from None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error, xmltodict.expat.ExpatError):
            raise CallbackError("bad_reply", f"{NO_SERVICE}（回复不是有效的 XML 消息）") from None
        if not isinstance(inner, dict) or not inner.get("MsgType"):
            raise CallbackError("bad_reply", f"{NO_SERVICE}（回复缺少 MsgType）")
        if inner.get("ToUserName") != openid or inner.get("FromUserName") != self.original_id:
            raise CallbackError("bad_reply", f"{NO_SERVICE}（回复的 ToUserName/FromUserName 不对）")
        msgtype = inner["MsgType"]
        if msgtype == "text":
            return Reply("text", inner.get("Content") or "")
        if msgtype == "news":
            items = (inner.get("Articles") or {}).get("item") or []
            names = {"title": "Title", "description": "Description", "picurl": "PicUrl", "url": "Url"}
            articles = [{k: i.get(v) for k, v in names.items()} for i in items]
            return Reply("news", {"articles": articles})
        return Reply(msgtype, {k: v for k, v in inner.items() if k not in ENVELOPE_FIELDS})
