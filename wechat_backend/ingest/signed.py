"""Signed pushes from the upstream public-health system (``POST /api/v1/ingest``).

The body is the import file's JSON Lines. The caller sends ``X-WB-Timestamp`` (unix seconds) and
``X-WB-Signature``: lower-case hex HMAC-SM3 of ``timestamp + "\\n" + body``, keyed with the
base64-decoded ``[security] ingest_hmac_key``. A timestamp more than :data:`WINDOW_SECONDS` from
the server's clock is refused, and so is a signature already accepted (:func:`claim_signature`
remembers each one in Redis for :data:`REMEMBER_SECONDS`, longer than any timestamp can pass).

Everything here but :func:`claim_signature` is pure. A refusal is a :class:`Refusal`: a stable
reason for logs and tests, the header to fix and a Chinese message saying what to do.
:func:`answer` shapes the import report into the response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from dataclasses import dataclass
from hmac import compare_digest
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from redis.exceptions import RedisError

from ..config import Settings
from ..errors import Conflict, Unavailable
from ..redis_client import RedisHandle, key
from .report import ImportReport

log = logging.getLogger("wechat_backend.ingest")

TIMESTAMP_HEADER = "X-WB-Timestamp"
SIGNATURE_HEADER = "X-WB-Signature"
WINDOW_SECONDS = 300
REMEMBER_SECONDS = 600  # a timestamp up to 300 s ahead stays acceptable until 600 s after it arrived
REDIS_TIMEOUT = 1.0

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")  # SM3: 32 bytes


@dataclass(frozen=True)
class Refusal:
    reason: str  # missing_timestamp, bad_timestamp, outside_window, missing_signature, ...
    header: str
    message: str


def signing_key(configured: str) -> bytes | None:
    """The HMAC key from ``[security] ingest_hmac_key`` (base64); None when empty or not base64."""
    try:
        raw = base64.b64decode(configured, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw or None


def signed_message(timestamp: str, body: bytes) -> bytes:
    """What the signature covers: the timestamp header's text, a newline, the body as sent."""
    return timestamp.encode("ascii") + b"\n" + body


class Signer:
    """HMAC-SM3 over :func:`signed_message`, fed the body piece by piece as it arrives."""

    def __init__(self, key: bytes, timestamp: str) -> None:
        self._mac = hmac.HMAC(key, hashes.SM3())
        self._mac.update(signed_message(timestamp, b""))

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def hexdigest(self) -> str:
        return self._mac.finalize().hex()


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-WB-Signature`` of a whole body (tests and scripts; the handler uses :class:`Signer`)."""
    signer = Signer(key, timestamp)
    signer.update(body)
    return signer.hexdigest()


def check_headers(timestamp: str | None, signature: str | None, now: float) -> Refusal | None:
    """Both headers present and well-formed, and the timestamp within the window of ``now``."""
    if not timestamp:
        return Refusal(
            "missing_timestamp",
            TIMESTAMP_HEADER,
            f"缺少请求头 {TIMESTAMP_HEADER}：请填写当前 Unix 时间（秒）并按接口说明签名后重发",
        )
    if not _TIMESTAMP.match(timestamp):
        return Refusal(
            "bad_timestamp",
            TIMESTAMP_HEADER,
            f"请求头 {TIMESTAMP_HEADER} 应为 Unix 时间（整数秒）：请用当前时间重新签名后重发",
        )
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        return Refusal(
            "outside_window",
            TIMESTAMP_HEADER,
            f"请求头 {TIMESTAMP_HEADER} 与服务器时间相差超过 5 分钟：请校准系统时钟，用当前时间重新签名后重发",
        )
    if not signature:
        return Refusal(
            "missing_signature",
            SIGNATURE_HEADER,
            f"缺少请求头 {SIGNATURE_HEADER}：请按接口说明计算 HMAC-SM3 签名后重发",
        )
    if not _SIGNATURE.match(signature):
        return Refusal(
            "bad_signature_format",
            SIGNATURE_HEADER,
            f"请求头 {SIGNATURE_HEADER} 应为 64 位小写十六进制的 HMAC-SM3 值：请按接口说明重新签名后重发",
        )
    return None


def check_signature(expected: str, given: str) -> Refusal | None:
    """The signature the body should carry against the one it carries, in constant time."""
    if compare_digest(expected.encode("ascii"), given.encode("ascii")):
        return None
    return Refusal(
        "wrong_signature",
        SIGNATURE_HEADER,
        "签名不正确：请核对 ingest_hmac_key（base64 解码后作为密钥），以及签名内容为"
        "“时间戳 + 换行 + 请求体原文”后重新签名",
    )


def seen_key(settings: Settings, signature: str) -> str:
    """``{prefix}:ingest:sig:<signature>``: a signature already accepted."""
    return key(settings, "ingest", "sig", signature)


async def claim_signature(redis: RedisHandle | None, settings: Settings, signature: str) -> None:
    """Remember a verified signature; :class:`Conflict` if it was accepted before. Without Redis
    nothing is accepted (:class:`Unavailable`): a replay could not be told apart."""
    if redis is None:
        raise Unavailable()
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            fresh = await redis.client.set(seen_key(settings, signature), 1, nx=True, ex=REMEMBER_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("ingest replay check unavailable (%s): refusing", type(exc).__name__)
        raise Unavailable() from None
    if not fresh:
        raise Conflict("该请求已处理过（签名重复）：如需再次发送，请用当前时间重新签名")


async def release_signature(redis: RedisHandle | None, settings: Settings, signature: str) -> None:
    """Forget a signature whose import failed, so the upstream's retry of the same request is taken
    (best effort: if Redis is gone too, the retry is refused and must be signed again)."""
    if redis is None:
        return
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            await redis.client.delete(seen_key(settings, signature))
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("ingest signature not released (%s)", type(exc).__name__)


def answer(report: ImportReport) -> dict[str, Any]:
    """The response: each non-blank line's outcome in line order (a rejected one with its reason),
    then the totals."""
    lines = [
        {"line": no, "status": status, **({"reason": report.reasons[no]} if status == "rejected" else {})}
        for no, status in sorted((report.statuses or {}).items())
    ]
    return {"lines": lines, "summary": _totals(report)}


def counts(report: ImportReport) -> str:
    """The totals for the log line: numbers only, never a line's content or reason."""
    return " ".join(f"{name}={n}" for name, n in _totals(report).items())


def _totals(report: ImportReport) -> dict[str, int]:
    return {
        "lines": report.lines,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
    }
