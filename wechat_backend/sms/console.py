"""The demo's SMS: the message goes to an SMS inbox (``POST <inbox url>``): the sandbox's, whose phone
page shows it, or ``[sms] endpoint``'s. Which one, if any, is :func:`~wechat_backend.sms.console_inbox_url`.
Production configuration refuses this provider."""

from __future__ import annotations

import httpx

from .sender import CodeSms, SmsResult, log_result


class ConsoleSender:
    provider = "console"

    def __init__(self, url: str | None, timeout_seconds: float, *, transport: httpx.AsyncBaseTransport | None = None):
        """``url`` is the inbox's URL; ``None``: there is no inbox, and ``send`` posts nothing."""
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False, transport=transport
        )

    async def send(self, phone: str, sms: CodeSms) -> SmsResult:
        if self.url is None:
            return log_result(self.provider, phone, SmsResult.of("error", "no_inbox"))
        try:
            response = await self._client.post(self.url, json={"phone": phone, "text": sms.text()})
        except httpx.TimeoutException:
            result = SmsResult.of("timeout")
        except httpx.HTTPError:
            result = SmsResult.of("error")
        else:
            ok = response.status_code in (200, 201)
            result = SmsResult.of("sent") if ok else SmsResult.of("error", f"http_{response.status_code}")
        return log_result(self.provider, phone, result)

    async def close(self) -> None:
        await self._client.aclose()
