"""The demo's SMS: the message goes to the sandbox's SMS inbox (``POST <base>/api/sms``), where the
sandbox's phone page shows it. Production configuration refuses this provider."""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .sender import BindCodeSms, SmsResult, log_result

TIMED_OUT = 599  # what Tornado's client reports for a connect or request timeout


class ConsoleSender:
    provider = "console"

    def __init__(self, base_url: str, timeout_seconds: float):
        """``base_url`` is ``[sms] endpoint``, or else ``[wechat] api_base_url`` (the sandbox's)."""
        self.url = base_url.rstrip("/") + "/api/sms"
        self.timeout_seconds = timeout_seconds
        # Tornado's own client, not httpx: one POST costs a third of the CPU (every bind start
        # makes one), and the server already runs on Tornado. Made on first use, on the loop
        # that serves.
        self._client: AsyncHTTPClient | None = None

    async def send(self, phone: str, sms: BindCodeSms) -> SmsResult:
        if self._client is None:
            self._client = AsyncHTTPClient(force_instance=True, max_clients=64)
        request = HTTPRequest(
            self.url,
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"phone": phone, "text": sms.text()}),
            connect_timeout=self.timeout_seconds,
            request_timeout=self.timeout_seconds,
            follow_redirects=False,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except HTTPClientError as exc:
            result = SmsResult.of("timeout" if exc.code == TIMED_OUT else "error")
        except OSError:  # refused, unreachable, reset
            result = SmsResult.of("error")
        else:
            ok = response.code in (200, 201)
            result = SmsResult.of("sent") if ok else SmsResult.of("error", f"http_{response.code}")
        return log_result(self.provider, phone, result)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
