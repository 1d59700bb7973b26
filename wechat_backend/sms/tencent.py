"""腾讯云短信：SendSms（2021-01-11 版），官方 SDK ``tencentcloud-sdk-python-sms``。
https://cloud.tencent.com/document/product/382/55981"""

from __future__ import annotations

from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111.models import SendSmsRequest
from tencentcloud.sms.v20210111.sms_client import SmsClient

from ..config import ConfigError, SmsSettings
from .sdk import SdkSender, caused_by_timeout, split_endpoint
from .sender import CodeSms, SmsResult, template_for

_OUTCOMES = {
    "Ok": "sent",
    "InvalidParameterValue.IncorrectPhoneNumber": "invalid_number",
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber": "invalid_number",
    "FailedOperation.InsufficientBalanceInSmsPackage": "quota",
}
# The SDK's own codes for a request that got no usable answer.
_NETWORK_CODES = frozenset({"ClientNetworkError", "ServerNetworkError"})


def outcome_of(code: str) -> str:
    """The outcome of a SendStatusSet code or an API error code."""
    if code in _OUTCOMES:
        return _OUTCOMES[code]
    if code.startswith("LimitExceeded."):
        return "rate_limited"
    if code.startswith("InternalError"):
        return "error"
    return "rejected"


class TencentSender(SdkSender):
    provider = "tencent"

    def __init__(self, settings: SmsSettings) -> None:
        required = ("secret_id", "secret_key", "sdk_app_id", "sign_name", "template_id")
        missing = [k for k in required if not getattr(settings, k)]
        if missing:
            raise ConfigError(f'[sms] provider = "tencent" 需要配置 [sms] {", ".join(missing)}')
        super().__init__(settings)
        http = HttpProfile(reqTimeout=settings.timeout_seconds)
        if settings.endpoint:
            http.scheme, http.endpoint = split_endpoint(settings.endpoint)
        self._client = SmsClient(
            Credential(settings.secret_id, settings.secret_key), settings.region, ClientProfile(httpProfile=http)
        )
        self._app_id = settings.sdk_app_id
        self._sign_name = settings.sign_name

    def _send_blocking(self, phone: str, sms: CodeSms) -> SmsResult:
        template_id, sms = template_for(self._settings, sms)
        request = SendSmsRequest()
        request.PhoneNumberSet = [phone if phone.startswith("+") else "+86" + phone]
        request.SmsSdkAppId = self._app_id
        request.SignName = self._sign_name
        request.TemplateId = template_id
        request.TemplateParamSet = sms.params()
        try:
            response = self._client.SendSms(request)
        except TencentCloudSDKException as exc:
            code = str(exc.code or "")
            if code in _NETWORK_CODES:
                return SmsResult.of("timeout" if caused_by_timeout(exc) else "error", code)
            return SmsResult.of(outcome_of(code), code)
        statuses = response.SendStatusSet or []
        if not statuses:
            return SmsResult.of("error", "NoSendStatus")
        code = str(statuses[0].Code or "")
        return SmsResult.of(outcome_of(code), code)
