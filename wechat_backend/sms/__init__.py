"""SMS for the binding code and the 工作台 login code, behind one small interface (:class:`SmsSender`).
Each message kind has its own provider template (``[sms] template_id``, ``staff_template_id``).

* ``console`` (demo only): the message lands in the sandbox's SMS inbox (see :func:`console_inbox_url`).
* ``tencent``: 腾讯云短信 through ``tencentcloud-sdk-python-sms``.
* ``aliyun``: 阿里云短信 through ``alibabacloud_dysmsapi20170525``.

``send`` never raises for provider or network trouble; it returns an :class:`SmsResult` whose
``outcome`` is one of :data:`OUTCOMES` and whose ``message`` tells the resident what to do next.
The phone is logged masked only; the code never.
"""

from __future__ import annotations

from ..config import Settings
from .sender import MESSAGES, OUTCOMES, BindCodeSms, CodeSms, SmsResult, SmsSender, StaffCodeSms

__all__ = [
    "MESSAGES",
    "OUTCOMES",
    "BindCodeSms",
    "CodeSms",
    "SmsResult",
    "SmsSender",
    "StaffCodeSms",
    "console_inbox_url",
    "make_sender",
]


def make_sender(settings: Settings) -> SmsSender:
    """The sender ``[sms] provider`` names. A provider missing a credential raises ``ConfigError``."""
    sms = settings.sms
    # Each SDK is imported only when configured: the demo and most commands need neither.
    if sms.provider == "tencent":
        from .tencent import TencentSender

        return TencentSender(sms)
    if sms.provider == "aliyun":
        from .aliyun import AliyunSender

        return AliyunSender(sms)
    from .console import ConsoleSender

    return ConsoleSender(console_inbox_url(settings), sms.timeout_seconds)


def console_inbox_url(settings: Settings) -> str | None:
    """Where the ``console`` provider posts a phone number and its code in clear, or ``None``.

    Only to an inbox someone chose for it: ``[sms] endpoint`` when set, else this process's own
    sandbox, which is mounted only when ``[sandbox] enabled`` in demo mode. Never derived from
    ``[wechat] api_base_url``: under ``serve`` with the sandbox off that is WeChat's real host, which
    must not receive residents' phone numbers and codes. ``None``: no inbox, nothing is sent.
    """
    if settings.sms.endpoint:
        return settings.sms.endpoint.rstrip("/") + "/api/sms"
    if settings.sandbox.enabled and settings.is_demo:
        return settings.server.public_base_url.rstrip("/") + "/sandbox/api/sms"
    return None
