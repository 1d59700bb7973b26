"""阿里云短信：SendSms（2017-05-25 版），官方 SDK ``alibabacloud_dysmsapi20170525``。
https://help.aliyun.com/zh/sms/developer-reference/api-dysmsapi-2017-05-25-sendsms"""

from __future__ import annotations

import json

from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import SendSmsRequest
from alibabacloud_tea_openapi.utils_models import Config
from Tea.exceptions import TeaException, UnretryableException

from ..config import ConfigError, SmsSettings
from .sdk import SdkSender, caused_by_timeout, split_endpoint
from .sender import CodeSms, SmsResult, template_for

_OUTCOMES = {
    "OK": "sent",
    "isv.BUSINESS_LIMIT_CONTROL": "rate_limited",
    "isv.DAY_LIMIT_CONTROL": "rate_limited",
    "isv.MOBILE_NUMBER_ILLEGAL": "invalid_number",
    "isv.AMOUNT_NOT_ENOUGH": "quota",
    "isv.OUT_OF_SERVICE": "quota",
}
# SMS is one service for the mainland; this region makes the SDK use dysmsapi.aliyuncs.com.
# ([sms] region is Tencent's.)
_REGION = "cn-hangzhou"


def outcome_of(code: str) -> str:
    """The outcome of the answer's ``Code``; ``isp.*`` codes are the service's own failures."""
    if code in _OUTCOMES:
        return _OUTCOMES[code]
    return "error" if code.startswith("isp.") else "rejected"


class AliyunSender(SdkSender):
    provider = "aliyun"

    def __init__(self, settings: SmsSettings) -> None:
        required = ("access_key_id", "access_key_secret", "sign_name", "template_id")
        missing = [k for k in required if not getattr(settings, k)]
        if missing:
            raise ConfigError(f'[sms] provider = "aliyun" 需要配置 [sms] {", ".join(missing)}')
        super().__init__(settings)
        millis = max(int(settings.timeout_seconds * 1000), 1)
        config = Config(
            access_key_id=settings.access_key_id,
            access_key_secret=settings.access_key_secret,
            region_id=_REGION,
            connect_timeout=millis,
            read_timeout=millis,
        )
        if settings.endpoint:
            config.protocol, config.endpoint = split_endpoint(settings.endpoint)
        self._client = Client(config)
        self._sign_name = settings.sign_name

    def _send_blocking(self, phone: str, sms: CodeSms) -> SmsResult:
        template_code, sms = template_for(self._settings, sms)
        request = SendSmsRequest(
            phone_numbers=phone,
            sign_name=self._sign_name,
            template_code=template_code,
            template_param=json.dumps(sms.named_params(), ensure_ascii=False),
        )
        try:
            response = self._client.send_sms(request)
        except UnretryableException as exc:  # no answer: connection refused, reset, timed out
            return SmsResult.of("timeout" if caused_by_timeout(exc) else "error", "NoResponse")
        except TeaException as exc:  # an HTTP error status; the body may still carry a known code
            code = str(exc.code or "")
            status = getattr(exc, "status_code", None) or 0
            return SmsResult.of("error" if status >= 500 else outcome_of(code), code)
        code = str(response.body.code or "") if response.body else ""
        return SmsResult.of(outcome_of(code), code)
