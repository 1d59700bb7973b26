"""The demo's SMS: the message goes to the sandbox's SMS inbox (``POST <base>/api/sms``), where the
sandbox's phone page shows it. Production configuration refuses this provider."""

from __future__ import annotations

import httpx

from .sender import BindCodeSms, SmsResult, log_result


class ConsoleSender:
    provider = "console"

    def __init__(self, base_url: str, timeout_seconds: float, *, transport: httpx.AsyncBaseTransport | None = None):
        """``base_url`` is ``[sms] endpoint``, or else ``[wechat] api_base_url`` (the sandbox's)."""
        self.url = base_url.rstrip("/") + "/api/sms"
        self.timeout_seconds = timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False, transport=transport
        )

    async def send(self, phone: str, sms: BindCodeSms) -> SmsResult:
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
