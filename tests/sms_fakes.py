"""Stand-ins for the two cloud SMS services on 127.0.0.1, answering as the providers do, so the
real SDKs can be tested end to end. Each checks the request's signature with the secret (computed
here independently of the SDKs), records what arrived and answers with the code a test chose.

* Tencent Cloud SendSms (API 3.0, TC3-HMAC-SHA256): JSON body, action in ``X-TC-Action``;
  https://cloud.tencent.com/document/api/213/30654
* Alibaba Cloud SendSms (V3 signature, ACS3-HMAC-SHA256): parameters in the query string, action
  in ``x-acs-action``; https://help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from local_server import serving
from tornado.web import Application, RequestHandler

TENCENT_SECRET_ID = "AKIDtest0000000000000000000000000000"
TENCENT_SECRET_KEY = "tencent-secret-key-0123456789abcdef"
TENCENT_APP_ID = "1400000001"
ALIYUN_KEY_ID = "LTAItest000000000000"
ALIYUN_KEY_SECRET = "aliyun-secret-0123456789abcdef"
SIGN_NAME = "聊城健康档案"
TEMPLATE_ID = "1234567"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@dataclass
class FakeSms:
    """What a fake received and how it answers: ``code`` is the provider's result code, sent with
    HTTP ``http_status``; ``delay`` (seconds) holds the answer back."""

    secret: str
    url: str = ""
    code: str = ""
    http_status: int = 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        if self.delay:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.delay)


class _FakeHandler(RequestHandler):
    def initialize(self, fake: FakeSms) -> None:
        self.fake = fake

    def answer(self, body: dict[str, Any], status: int | None = None) -> None:
        self.set_status(status or self.fake.http_status)
        # The Tencent SDK reads an error answer only with exactly this content type.
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False))


# --------------------------------------------------------------------------- Tencent


def tc3_signature(secret_key: str, *, host: str, content_type: str, body: bytes, timestamp: str) -> str:
    """TC3-HMAC-SHA256 of a POST to ``/`` for the ``sms`` service."""
    date = dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%d")
    canonical = f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{_sha256(body)}"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n{_sha256(canonical.encode())}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), "sms"), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


_TC3_AUTH = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>[\d-]+)/sms/tc3_request, "
    r"SignedHeaders=content-type;host, Signature=(?P<sig>[0-9a-f]{64})"
)


class _TencentHandler(_FakeHandler):
    async def post(self) -> None:
        h = self.request.headers
        auth = _TC3_AUTH.fullmatch(h.get("Authorization", ""))
        expected = tc3_signature(
            self.fake.secret,
            host=h.get("Host", ""),
            content_type=h.get("Content-Type", ""),
            body=self.request.body,
            timestamp=h.get("X-TC-Timestamp", "0"),
        )
        body = json.loads(self.request.body)
        self.fake.received.append(
            {
                "action": h.get("X-TC-Action"),
                "version": h.get("X-TC-Version"),
                "region": h.get("X-TC-Region"),
                "secret_id": auth and auth["id"],
                "signature_ok": bool(auth) and hmac.compare_digest(auth["sig"], expected),
                **body,
            }
        )
        await self.fake.wait()
        request_id = secrets.token_hex(16)
        if h.get("X-TC-Action") != "SendSms" or not self.fake.received[-1]["signature_ok"]:
            error = {"Code": "AuthFailure.SignatureFailure", "Message": "签名错误"}
            self.answer({"Response": {"Error": error, "RequestId": request_id}})
        elif self.fake.code.startswith("api:"):
            error = {"Code": self.fake.code.removeprefix("api:"), "Message": "接口错误"}
            self.answer({"Response": {"Error": error, "RequestId": request_id}})
        else:
            statuses = [
                {"SerialNo": "", "PhoneNumber": phone, "Fee": 1, "Code": self.fake.code, "Message": "send success"}
                for phone in body.get("PhoneNumberSet", [])
            ]
            self.answer({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})


# --------------------------------------------------------------------------- Alibaba


def acs3_signature(secret: str, *, method: str, query: str, headers: dict[str, str], signed: list[str]) -> str:
    """ACS3-HMAC-SHA256 of a request to ``/``; ``query`` is the raw query string."""
    pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{k}={urllib.parse.quote(v, safe='~')}" for k, v in pairs)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join(
        [method, "/", canonical_query, canonical_headers, ";".join(signed), headers.get("x-acs-content-sha256", "")]
    )
    to_sign = f"ACS3-HMAC-SHA256\n{_sha256(canonical.encode())}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


_ACS3_AUTH = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<id>[^,]+),SignedHeaders=(?P<signed>[a-z0-9;-]+),Signature=(?P<sig>[0-9a-f]{64})"
)


class _AliyunHandler(_FakeHandler):
    async def post(self) -> None:
        headers = {k.lower(): v for k, v in self.request.headers.get_all()}
        auth = _ACS3_AUTH.fullmatch(headers.get("authorization", ""))
        ok = bool(auth) and headers.get("x-acs-content-sha256") == _sha256(self.request.body)
        if auth:
            expected = acs3_signature(
                self.fake.secret,
                method=self.request.method or "",
                query=self.request.query,
                headers=headers,
                signed=auth["signed"].split(";"),
            )
            ok = ok and hmac.compare_digest(auth["sig"], expected)
        query = dict(urllib.parse.parse_qsl(self.request.query, keep_blank_values=True))
        self.fake.received.append(
            {
                "action": headers.get("x-acs-action") or query.get("Action"),
                "version": headers.get("x-acs-version") or query.get("Version"),
                "access_key_id": auth and auth["id"],
                "signature_ok": ok,
                **query,
            }
        )
        await self.fake.wait()
        request_id = secrets.token_hex(16).upper()
        if self.fake.received[-1]["action"] != "SendSms" or not ok:
            self.answer({"Code": "SignatureDoesNotMatch", "Message": "签名错误", "RequestId": request_id}, 400)
            return
        biz_id = f"{secrets.randbelow(10**12)}^0" if self.fake.code == "OK" else ""
        self.answer({"Code": self.fake.code, "Message": "OK", "BizId": biz_id, "RequestId": request_id})


# --------------------------------------------------------------------------- servers


@asynccontextmanager
async def _serve(handler: type[_FakeHandler], fake: FakeSms) -> AsyncIterator[FakeSms]:
    # The provider's own access log (the query string carries the phone) is not ours to check.
    app = Application([(r"/", handler, {"fake": fake})], log_function=lambda handler: None)
    async with serving(app) as base:
        fake.url = base
        try:
            yield fake
        finally:
            fake.release.set()  # answers held back by a test go out before the server closes
            await asyncio.sleep(0)


@asynccontextmanager
async def running_tencent() -> AsyncIterator[FakeSms]:
    """Answers SendStatusSet ``[{"Code": fake.code, ...}]``; ``code = "api:<Code>"`` answers a
    ``Response.Error`` instead (how the API reports a request it refuses as a whole)."""
    async with _serve(_TencentHandler, FakeSms(TENCENT_SECRET_KEY, code="Ok")) as fake:
        yield fake


@asynccontextmanager
async def running_aliyun() -> AsyncIterator[FakeSms]:
    """Answers ``{"Code": fake.code, "Message", "BizId", "RequestId"}`` with ``fake.http_status``."""
    async with _serve(_AliyunHandler, FakeSms(ALIYUN_KEY_SECRET, code="OK")) as fake:
        yield fake
