"""What every SMS provider shares: the messages sent (the binding code, the 工作台 login code), the
result, the sender interface, the log line."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol

from ..config import SmsSettings
from ..privacy import mask_phone

log = logging.getLogger("wechat_backend.sms")

OUTCOMES = ("sent", "rate_limited", "invalid_number", "quota", "timeout", "rejected", "error")

# What the resident reads, by outcome: what happened and what to do next.
MESSAGES = {
    "sent": "",
    "rate_limited": "该手机号接收验证码过于频繁，请稍后再试",
    "invalid_number": "档案预留的手机号无法接收短信，请联系签约机构更新手机号",
    "quota": "短信发送失败，请稍后再试或联系签约机构",
    "timeout": "短信服务响应超时，如未收到验证码，请稍后重新获取",
    "rejected": "短信暂时无法发送，请稍后再试或联系签约机构",
    "error": "短信服务暂时不可用，请稍后再试",
}

# A provider's code is an identifier; anything else it might carry stays out of logs and metrics.
_CODE = re.compile(r"[A-Za-z0-9._:-]{1,80}")


@dataclass(frozen=True)
class BindCodeSms:
    """The binding verification code. The provider template (``[sms] template_id``) has three
    parameters, in this order: the masked name, the code, the minutes it stays valid."""

    name_mask: str
    code: str
    minutes: int

    def text(self) -> str:
        return f"您正在绑定{self.name_mask}的健康档案，验证码{self.code}，{self.minutes}分钟内有效。请勿告诉他人。"

    def params(self) -> list[str]:
        """Tencent's positional template parameters ({1}, {2}, {3})."""
        return [self.name_mask, self.code, str(self.minutes)]

    def named_params(self) -> dict[str, str]:
        """Alibaba's named template parameters (${name}, ${code}, ${minutes})."""
        return {"name": self.name_mask, "code": self.code, "minutes": str(self.minutes)}


@dataclass(frozen=True)
class StaffCodeSms:
    """The 工作台 login code. Its own template (``[sms] staff_template_id``) has two parameters, in
    this order: the code, the minutes it stays valid (Alibaba: ``${code}``, ``${minutes}``)."""

    code: str
    minutes: int

    def text(self) -> str:
        return f"您正在登录健康档案工作台，验证码{self.code}，{self.minutes}分钟内有效。如非本人操作请忽略。"

    def params(self) -> list[str]:
        return [self.code, str(self.minutes)]

    def named_params(self) -> dict[str, str]:
        return {"code": self.code, "minutes": str(self.minutes)}


CodeSms = BindCodeSms | StaffCodeSms
"""A message a provider can send: each kind has its own template and parameters."""

# Where a staff code goes in the binding template when no staff template is configured.
STAFF_IN_BIND_TEMPLATE = "工作台"


def template_for(settings: SmsSettings, sms: CodeSms) -> tuple[str, CodeSms]:
    """The provider template id for ``sms``, and the message in that template's shape: a staff
    code goes with ``staff_template_id``; while that is empty, with ``template_id`` as a binding
    code would (three parameters, 工作台 in the name's place), so the parameters still fit."""
    if isinstance(sms, StaffCodeSms):
        if settings.staff_template_id:
            return settings.staff_template_id, sms
        return settings.template_id, BindCodeSms(STAFF_IN_BIND_TEMPLATE, sms.code, sms.minutes)
    return settings.template_id, sms


@dataclass(frozen=True)
class SmsResult:
    """How a send ended. ``message`` is for the resident ("" when sent); ``provider_code`` is the
    provider's own code, for logs and metrics."""

    outcome: str
    message: str
    provider_code: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown SMS outcome {self.outcome!r}")

    @property
    def ok(self) -> bool:
        return self.outcome == "sent"

    @classmethod
    def of(cls, outcome: str, provider_code: object = "") -> SmsResult:
        code = str(provider_code or "")
        return cls(outcome, MESSAGES.get(outcome, ""), code if _CODE.fullmatch(code) else "")


class SmsSender(Protocol):
    """Sends one SMS. ``send`` never raises for provider or network trouble: it returns the outcome."""

    provider: str  # "console" | "tencent" | "aliyun"

    async def send(self, phone: str, sms: CodeSms) -> SmsResult: ...

    async def close(self) -> None: ...


def log_result(provider: str, phone: str, result: SmsResult) -> SmsResult:
    """One line per send, with the phone masked; INFO when sent, WARNING otherwise."""
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, "sms %s to %s: %s %s", provider, mask_phone(phone), result.outcome, result.provider_code or "-")
    return result
