"""What the two cloud SMS senders share: the providers' SDKs block, so each sender runs its SDK
in a small thread pool of its own, bounds the wait, and keeps the SDKs' debug logs (which carry
the request — the phone and the code) out of the log."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from ..config import SmsSettings
from .sender import CodeSms, SmsResult, log_result

# Sends at once per sender; more wait in the pool's queue, inside the same time bound.
POOL_SIZE = 8
_THREAD_PREFIX = "wb-sms"
# Loggers that write the request URL or body at DEBUG (the Alibaba SDK puts the phone and the
# template parameters in the query string; the Tencent SDK logs the whole request).
_CHATTY_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "tencentcloud_sdk_common",
    "darabonba-core",
    "alibabacloud-tea",
)


class _DropSdkRecords(logging.Filter):
    """Drops what the SDKs and their HTTP library log from the SMS threads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith(_THREAD_PREFIX)


def _quiet_sdk_logs() -> None:
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropSdkRecords) for f in logger.filters):
            logger.addFilter(_DropSdkRecords())


def caused_by_timeout(exc: BaseException) -> bool:
    """Whether a timeout is somewhere in the chain: the SDKs wrap the HTTP library's exception
    (requests' ``ReadTimeout``/``ConnectTimeout``, urllib3's ``ReadTimeoutError``, ``socket.timeout``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TimeoutError) or type(current).__name__.endswith(("Timeout", "TimeoutError")):
            return True
        seen.add(id(current))
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__
    return False


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://127.0.0.1:8081`` -> ``("http", "127.0.0.1:8081")``; a bare host means https."""
    for scheme in ("http", "https"):
        if endpoint.startswith(scheme + "://"):
            return scheme, endpoint[len(scheme) + 3 :].rstrip("/")
    return "https", endpoint.rstrip("/")


class SdkSender:
    """Base of the Tencent and Alibaba senders: :meth:`_send_blocking` runs in the pool, within
    ``[sms] timeout_seconds``; a subclass turns its SDK's answer or exception into a result."""

    provider = ""

    def __init__(self, settings: SmsSettings) -> None:
        _quiet_sdk_logs()
        self._settings = settings
        self.timeout_seconds = settings.timeout_seconds
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=POOL_SIZE, thread_name_prefix=f"{_THREAD_PREFIX}-{self.provider}"
        )

    async def send(self, phone: str, sms: CodeSms) -> SmsResult:
        loop = asyncio.get_running_loop()
        try:
            # The timeout cancels a job still waiting in the queue, so it is never sent after the
            # resident was told "timeout"; one already running ends at the SDK's own timeout.
            async with asyncio.timeout(self.timeout_seconds):
                result = await loop.run_in_executor(self._executor, self._send_blocking, phone, sms)
        except TimeoutError:
            result = SmsResult.of("timeout")
        return log_result(self.provider, phone, result)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _send_blocking(self, phone: str, sms: CodeSms) -> SmsResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} timeout={self.timeout_seconds:g}s>"
